"""How many members a fused stack holds well on this device: measured, not assumed.

A stack does its members' work in fewer, larger operators. Whether that is cheaper per member
depends on the device and the network. On a GPU it mostly is: a small network's step is kernel
launches. On a CPU a stacked step reads and writes every member's activations per operator, and
once they leave the caches a member costs as much as alone, or more: seed 001's spiral network
measured 0.95 ms a member alone, 0.86 in a stack of 4, 1.22 in one of 8 and 1.28 in one of 16 on
one machine of this kind, where the last-level cache (32 MiB) would have allowed 13; another
machine of the kind reports an 8 MiB one.

So a worker times one forward and backward of stacks of 1, 2, 4, ... members of a job's network
and step size, on random weights and data, each size right after a step of its own (so its
tensors are in the caches as they are from one training step to the next; timed after another
size's step, a small stack looked no faster than a large one), and takes the largest stack
whose time per member is within TOLERANCE of the best. Ties go to the larger stack because
the rest of a step is paid once per group, not per member, and this timing leaves it out: the
optimizer's loop, the batches, the epoch's bookkeeping, and through the service each job's
start, end and writes. Seed 002's SimpleNN (batch 64) times the same per member from 8 to 64
members and trains faster the larger its groups (bench/fused.py: 1.73x, 2.06x, 2.21x in groups
of 8, 16, 32, with glibc's default allocator); seed 001's spiral network, 0.38-0.41 ms a member
in 4s against 0.41-0.52 in 8s, trained 32 of its configurations 1.49x faster than one by one
through the service in groups of 4 and 1.30x in groups of 8 (README, Fused training).
"""

import math
import time
from collections.abc import Callable

import torch

from service.specs import JobSpec
from service.training.fused.stack import StackedLayers, measure
from service.training.holdout import validation_size
from service.training.networks import build_network
from service.training.plan import job_shape

TOLERANCE = 0.05
# Each size's time is the least of this many rounds, each a step to warm up and a timed one.
REPEATS = 3
# A stack whose first step takes longer than this is the last size tried.
LONGEST_STEP_SECONDS = 0.25


def largest_near_best(per_member: dict[int, float], *, tolerance: float = TOLERANCE) -> int:
    """The largest size whose seconds per member are within `tolerance` of the least."""
    best = min(per_member.values())
    return max(size for size, seconds in per_member.items() if seconds <= best * (1 + tolerance))


def sizes_to_try(limit: int) -> list[int]:
    """1, 2, 4, ... below `limit`, then `limit` itself."""
    sizes = [1]
    while sizes[-1] * 2 < limit:
        sizes.append(sizes[-1] * 2)
    return [*sizes, limit] if limit > 1 else sizes


def step_samples(spec: JobSpec) -> int:
    """The samples of one member's training step: its batch, or its whole training split."""
    shape = job_shape(spec)
    training = shape.samples - validation_size(
        samples=shape.samples, fraction=spec.validation_fraction
    )
    return min(spec.batch_size or training, training)


def time_per_member(spec: JobSpec, *, device: torch.device, limit: int) -> dict[int, float]:
    """Seconds per member of one forward and backward of a stack of this spec's networks, for
    each size of sizes_to_try(limit) up to the first whose step takes too long. Each size's
    time is the least of REPEATS rounds that step every size in turn (an untimed step of its
    own, then the timed one), so a moment of load on a shared machine falls on all sizes alike
    rather than on one."""
    shape = job_shape(spec)
    batch = step_samples(spec)
    loss = spec.loss
    assert loss is not None
    # On the meta device: shapes and settings only, no weights drawn from torch's generator.
    network = build_network(spec.model.layers, device=torch.device("meta"))
    step = measure(
        StackedLayers(list(network)), loss=loss, classification=spec.task == "classification"
    )
    generator = torch.Generator().manual_seed(0)

    def stack(size: int) -> Callable[[], float]:
        parameters = {
            name: torch.randn((size, *p.shape), generator=generator).to(device).requires_grad_()
            for name, p in network.named_parameters()
        }
        x = torch.randn((size, batch, *shape.input_shape), generator=generator).to(device)
        targets = (size, batch, *shape.target_shape)
        if loss == "cross_entropy":
            classes = shape.num_classes or 2
            y = torch.randint(0, classes, targets, generator=generator).to(device)
        else:
            y = torch.rand(targets, generator=generator).to(device)

        def seconds() -> float:
            started = time.perf_counter()
            losses, _ = step(parameters, x, y)
            losses.sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - started

        return seconds

    steps: dict[int, Callable[[], float]] = {}
    for size in sizes_to_try(limit):
        steps[size] = stack(size)
        if steps[size]() > LONGEST_STEP_SECONDS:
            break
    least = {size: math.inf for size in steps}
    for _ in range(REPEATS):
        for size, seconds in steps.items():
            seconds()  # as in training, the step before leaves this stack's tensors in the caches
            least[size] = min(least[size], seconds())
    return {size: seconds / size for size, seconds in least.items()}
