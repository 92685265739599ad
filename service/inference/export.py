"""A job's checkpoint as an ONNX model that takes the raw inputs predict takes.

The graph is the job's network in eval mode with its preprocessing before it and, for a
regression on standardised targets, the map back to the targets' units after it: input `inputs`
(float32, batch axis dynamic), output `outputs` (a classifier's logits, which predict's softmax
or sigmoid is computed from, or a regression's values in the targets' units).

Made with torch.onnx's exporter built on torch.export (`dynamo=True`): since torch 2.9 it is the
default and the TorchScript-based one warns that it is deprecated, as TorchScript itself is. It
needs the `onnx` and `onnxscript` packages. It is slower (on 2 shared cores about 5 s for the
first export in a process, 1.2 s after, against 0.4 s and 10 ms), so exports are cached per
checkpoint, and run one at a time: torch.export keeps process-wide tracing state.
"""

import logging
import threading
import warnings
from dataclasses import dataclass

import torch
from sqlalchemy.orm import Session, sessionmaker
from torch import nn

from service.db import transaction
from service.errors import Conflict
from service.inference import loading
from service.inference.cache import LRU
from service.inference.loading import LoadedNetwork
from service.inference.lookup import CheckpointRef, Target, resolve_checkpoint
from service.training.standardize import Standardization

log = logging.getLogger(__name__)

INPUT_NAME = "inputs"
OUTPUT_NAME = "outputs"
# Exported models kept per api process; each is about the size of its checkpoint's weights.
EXPORTS_KEPT = 8
# torch.export specialises a dimension traced at size 0 or 1 to a constant: trace at 2.
TRACE_BATCH = 2

# The exporter logs a warning per torchvision operator it cannot register (torchvision is not
# installed, and no allow-listed layer needs one) on every first export.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Scaling:
    """x' = (x - center) / scale, per feature, broadcast over a batch: one preprocessing step;
    its inverse, x * scale + center, maps a standardised output back."""

    center: torch.Tensor
    scale: torch.Tensor


def input_steps(standardization: Standardization | None) -> list[Scaling]:
    """What predict does to raw inputs before the network, in order.

    Image data (scaling to [0, 1], per-channel normalisation) adds its steps here, before the
    standardisation, in the order predict applies them."""
    if standardization is None:
        return []
    return [Scaling(center=standardization.x_mean, scale=standardization.x_std)]


def output_steps(loaded: LoadedNetwork) -> list[Scaling]:
    """What predict undoes on a regression network's output: back to the targets' units."""
    standardization = loaded.standardization
    if loaded.task != "regression" or standardization is None or standardization.y_std is None:
        return []
    assert standardization.y_mean is not None
    return [Scaling(center=standardization.y_mean, scale=standardization.y_std)]


class ExportedNetwork(nn.Module):
    """The network between its input and output steps; what the ONNX graph computes. Each step
    is written as predict computes it, so the two agree to float32 rounding."""

    def __init__(self, loaded: LoadedNetwork) -> None:
        super().__init__()
        self.network = loaded.network
        self.before = _register("before", input_steps(loaded.standardization), module=self)
        self.after = _register("after", output_steps(loaded), module=self)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        for center, scale in self.before:
            x = (x - getattr(self, center)) / getattr(self, scale)
        x = self.network(x)
        for center, scale in self.after:
            x = x * getattr(self, scale) + getattr(self, center)
        return x


def _register(prefix: str, steps: list[Scaling], *, module: nn.Module) -> list[tuple[str, str]]:
    """Each step's tensors as buffers (constants in the graph); their names, in order."""
    names = []
    for index, step in enumerate(steps):
        center, scale = f"{prefix}_{index}_center", f"{prefix}_{index}_scale"
        module.register_buffer(center, step.center.detach().float().cpu())
        module.register_buffer(scale, step.scale.detach().float().cpu())
        names.append((center, scale))
    return names


def _export(module: nn.Module, example: torch.Tensor) -> bytes:
    """The ONNX bytes of `module` traced on `example`, batch axis dynamic."""
    with warnings.catch_warnings():
        # torch.export's own deprecation notices about its internals; nothing a caller can fix.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            verbose=False,
        )
    assert program is not None
    data: bytes = program.model_proto.SerializeToString()
    return data


def to_onnx(loaded: LoadedNetwork) -> bytes:
    """The ONNX model of a loaded network (on the CPU, in eval mode) with its pre- and
    postprocessing; Conflict naming the first layer the exporter cannot handle."""
    module = ExportedNetwork(loaded).eval()
    example = torch.zeros(TRACE_BATCH, *loaded.input_shape)
    try:
        return _export(module, example)
    except Exception as exc:  # the exporter raises many kinds; each is a network it cannot take
        raise Conflict(_unexportable(loaded.network, example=example, error=exc)) from exc


def _unexportable(network: nn.Module, *, example: torch.Tensor, error: Exception) -> str:
    """Which layer the exporter fails on: each is exported alone, on the input it gets."""
    x = example
    assert isinstance(network, nn.Sequential)
    for index, layer in enumerate(network):
        try:
            _export(nn.Sequential(layer).eval(), x)
        except Exception as exc:
            reason = _reason(exc)
            return (
                f"layer {index} ({type(layer).__name__}) cannot be exported to ONNX: {reason}; "
                "the checkpoint can still be downloaded as safetensors"
            )
        with torch.no_grad():
            x = layer(x)
    return f"the network cannot be exported to ONNX: {_reason(error)}"


def _reason(error: BaseException) -> str:
    """The first line of the innermost cause: torch.onnx wraps the error that stopped it in
    one that says which step of its own failed and how to report it."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:300]


@dataclass(frozen=True)
class Exported:
    target: Target
    onnx: bytes


class Exporter:
    """ONNX exports of checkpoints, made one at a time and kept per checkpoint (by sha256)."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.exports: LRU[tuple[str, int, str], bytes] = LRU(capacity=EXPORTS_KEPT)
        self._lock = threading.Lock()

    def export(self, *, job_id: str, owner_id: str, ref: CheckpointRef | None) -> Exported:
        """Blocking: run it in a worker thread. The read transaction ends before the export."""
        with transaction(self.sessions) as session:
            target, _ = resolve_checkpoint(
                session, job_id=job_id, owner_id=owner_id, ref=ref, with_blobs=False
            )
            cached = self.exports.get(target.key)
            if cached is not None:
                return Exported(target=target, onnx=cached)
            loaded = loading.load(session, target=target, device=torch.device("cpu"))
        with self._lock:
            onnx = self.exports.get(target.key)
            if onnx is None:
                onnx = to_onnx(loaded)
                self.exports.put(target.key, onnx)
                log.info("exported job %s epoch %d to ONNX", target.job_id, target.epoch)
        return Exported(target=target, onnx=onnx)
