"""A checkpoint's bytes -> the network the job's spec describes, in eval mode, ready to predict.

The network is built on the meta device and the weights assigned to it, so loading allocates
the weights once and draws nothing from torch's random generator. Every forward pass runs
under `torch.inference_mode()` with the network in eval mode: Dropout passes inputs through and
BatchNorm uses its running statistics, so identical inputs give identical outputs.
"""

from dataclasses import dataclass

import numpy as np
import safetensors
import safetensors.torch
import torch
from sqlalchemy.orm import Session

from service import repository_checkpoints
from service.errors import Conflict, ServiceError
from service.inference.decoding import check_finite
from service.inference.lookup import Target
from service.specs import JobSpec, LossName, Task
from service.training.checkpoints import read_standardization
from service.training.networks import build_network
from service.training.plan import job_shape
from service.training.standardize import Standardization


@dataclass(frozen=True)
class Outputs:
    """A forward pass's results for a batch of rows, as NumPy arrays ready to encode.

    Classification: `predictions` class indices (N,) and `probabilities` (N, classes).
    Regression: `predictions` the outputs in the targets' own units (N, *target_shape).
    """

    predictions: np.ndarray
    probabilities: np.ndarray | None

    def rows(self, start: int, stop: int) -> "Outputs":
        probabilities = self.probabilities
        return Outputs(
            predictions=self.predictions[start:stop],
            probabilities=None if probabilities is None else probabilities[start:stop],
        )


@dataclass(frozen=True)
class LoadedNetwork:
    key: tuple[str, int, str]  # (job id, epoch, sha256) of the checkpoint it was loaded from
    network: torch.nn.Module
    device: torch.device
    input_shape: tuple[int, ...]  # one sample's shape
    task: Task
    loss: LossName
    standardization: Standardization | None
    # What each class index stands for, when the job's dataset names its classes.
    class_names: tuple[str, ...] | None = None
    # The inputs are pictures: (channels, height, width) pixel values 0-255.
    images: bool = False

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The raw network output for float32 inputs (N, *input_shape), on the CPU."""
        with torch.inference_mode():
            x = inputs.to(self.device).float()
            if self.standardization is not None:
                x = self.standardization.inputs(x)
            return self.network(x).float().cpu()

    def infer(self, inputs: np.ndarray) -> Outputs:
        """Predictions for float32 inputs (N, *input_shape) whose shape was already checked;
        InvalidInput if one is not finite. Checked here, in the worker thread, once per pass:
        on the event loop it cost each 1-row request more than its share of the pass."""
        check_finite(inputs)
        output = self.forward(torch.from_numpy(inputs))
        return self.outputs(output)

    def outputs(self, output: torch.Tensor) -> Outputs:
        with torch.inference_mode():
            if self.task == "regression":
                if self.standardization is not None:
                    output = self.standardization.outputs(output)
                return Outputs(predictions=output.numpy(), probabilities=None)
            if self.loss == "bce_with_logits":
                positive = torch.sigmoid(output[:, 0])
                probabilities = torch.stack((1 - positive, positive), dim=1)
                # p >= 0.5 exactly where the logit is >= 0; the logit avoids rounding in sigmoid.
                predictions = (output[:, 0] >= 0).long()
            else:
                probabilities = torch.softmax(output, dim=1)
                predictions = output.argmax(dim=1)
            return Outputs(predictions=predictions.numpy(), probabilities=probabilities.numpy())


def build_loaded(
    *,
    target: Target,
    spec: JobSpec,
    weights: bytes,
    state: bytes,
    device: torch.device,
) -> LoadedNetwork:
    """The network of a normalised spec with a checkpoint's weights, in eval mode on `device`."""
    network = build_network(spec.model.layers, device=torch.device("meta"))
    try:
        tensors = safetensors.torch.load(weights)
        network.load_state_dict(tensors, strict=True, assign=True)
    except (RuntimeError, safetensors.SafetensorError) as exc:
        raise ServiceError(
            f"checkpoint epoch {target.epoch} of job {target.job_id} does not fit its "
            f"network: {exc}"
        ) from exc
    network.to(device).eval()
    # A stored spec is normalised: task and loss are written out.
    assert spec.task is not None
    assert spec.loss is not None
    data = job_shape(spec)
    return LoadedNetwork(
        key=target.key,
        network=network,
        device=device,
        input_shape=data.input_shape,
        task=spec.task,
        loss=spec.loss,
        standardization=read_standardization(state),
        class_names=data.class_names if spec.task == "classification" else None,
        images=data.images,
    )


def load(session: Session, *, target: Target, device: torch.device) -> LoadedNetwork:
    """Read the checkpoint's blobs and build its network. Runs in a worker thread."""
    row = repository_checkpoints.find_checkpoint(session, job_id=target.job_id, ref=target.epoch)
    if row is None or row.sha256 != target.sha256:
        raise Conflict(
            f"checkpoint epoch {target.epoch} of job {target.job_id} changed while it was being "
            "loaded; send the request again"
        )
    return build_loaded(
        target=target,
        spec=target.spec,
        weights=row.weights,
        state=row.state,
        device=device,
    )
