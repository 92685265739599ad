"""A fused step's forward pass and losses (stack.measure) compiled with torch.compile, for
SERVICE_FUSE_COMPILE.

On the CPU a small network's stacked step is bound by memory traffic, not arithmetic: every
operator reads and writes the whole stack's activations, members x samples x features, however
many members share it. Inductor fuses the elementwise operators, and thin Linears written as
multiply-adds (linear.THIN_FEATURES), into loops that keep a block of the activations in the
cache, forward and backward (bench/fused.py --compile; README, Fused training).

The price is exactness. A compiled step sums in another order than the solo run's kernels do,
so a member's losses follow its solo run's only as far as its training damps rounding: within
1e-5 for a steady one, apart by a tenth within 300 epochs for a chaotic one (seed 001's spiral
network with Adam at lr 0.03). The eager step keeps each of that network's members bit for bit
its solo run, which is why it is the default.

A worker compiles once per network and loss, for any number of members (the member dimension
is dynamic from the first compile), and keeps the compiled step for every group after.
"""

import logging
import time

import torch
from torch import Tensor, nn

from service.specs import LossName
from service.training.fused.stack import Measure, StackedLayers, measure

logger = logging.getLogger(__name__)

# Compiled steps of this process by network and loss; None where compiling failed.
_compiled: dict[tuple[str, str, bool], Measure | None] = {}


def compiled_measure(
    layers: list[nn.Module],
    *,
    loss: LossName,
    classification: bool,
    example: tuple[dict[str, Tensor], Tensor, Tensor],
) -> Measure | None:
    """`measure` compiled for this network and loss, or None where torch.compile cannot compile
    it here (no C++ compiler, say: logged, and the step runs eagerly). The first call for a
    network compiles its forward and backward on `example` (parameters, inputs, targets), on
    copies of the parameters, so a failure touches no member."""
    key = ("; ".join(map(repr, layers)), loss, classification)
    if key not in _compiled:
        step = torch.compile(
            measure(StackedLayers(layers, thin=True), loss=loss, classification=classification),
        )
        parameters, x, y = example
        copies = {name: p.detach().clone().requires_grad_() for name, p in parameters.items()}
        for tensor in (*copies.values(), x, y):  # one compile for any number of members
            torch._dynamo.mark_dynamic(tensor, 0)
        started = time.perf_counter()
        try:
            losses, _ = step(copies, x, y)
            losses.sum().backward()
        except Exception:
            logger.warning("the fused step does not compile here; it runs eagerly", exc_info=True)
            _compiled[key] = None
        else:
            seconds = time.perf_counter() - started
            logger.info("compiled the fused step of %s in %.1f s", key[0], seconds)
            _compiled[key] = step
    return _compiled[key]


def works(device: torch.device) -> bool:
    """Whether torch.compile compiles for `device` here (Inductor needs a C++ compiler on the
    CPU, Triton on a GPU): a worker asks once as it starts, so its jobs' device does not claim
    compiled steps it cannot run."""
    try:
        x = torch.ones(2, device=device, requires_grad=True)
        torch.compile(lambda t: (t * 2).relu().sum())(x).backward()
    except Exception:
        logger.warning("torch.compile does not work here; fused steps run eagerly", exc_info=True)
        return False
    return True
