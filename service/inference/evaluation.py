"""Evaluate a checkpoint on a labelled dataset: the job's loss, and the task's metrics.

The loss is the job's loss function over the whole dataset at once, in the space training
measured it in (standardised targets when the job standardises), so it compares with the job's
`loss` and `val_loss`. Regression metrics are in the targets' own units.

What comes from the database (the checkpoint's network, an uploaded dataset's arrays) is read in
a short transaction of its own; the dataset is drawn and the forward pass, up to
SERVICE_MAX_EVALUATE_SAMPLES samples, runs after it is closed, in a worker thread, so no pooled
connection waits on the computation (as on predict's path, inference/predictor.py).
"""

import anyio.to_thread
import torch
from sqlalchemy.orm import Session

from service import datasets, specs
from service.db import transaction
from service.errors import InvalidInput
from service.inference.loading import LoadedNetwork
from service.inference.lookup import CheckpointRef, Target
from service.inference.predictor import Predictor
from service.schemas import CheckpointUsed, EvaluateOut
from service.specs import DatasetSpec, JobSpec
from service.training.datasets import Tensors, describe_dataset, make_dataset, seeded
from service.training.job_data import prepare_targets
from service.training.losses import LOSSES

# Rows per forward pass, to bound the memory one pass takes.
CHUNK_ROWS = 8192


def stored_tensors(
    session: Session, *, dataset: specs.UploadedData, owner_id: str, max_samples: int
) -> Tensors:
    """An uploaded dataset's (inputs, targets) on the CPU, checked against the limit first."""
    row = datasets.get(session, dataset_id=dataset.id, owner_id=owner_id)
    _check_size(row.samples, max_samples=max_samples)
    return datasets.load_arrays(session, dataset_id=dataset.id)


def drawn_tensors(
    dataset: specs.DatasetSpec,
    *,
    max_samples: int,
) -> Tensors:
    """(inputs, targets) on the CPU; generated datasets are checked against the limit first."""
    samples = describe_dataset(dataset).samples
    _check_size(samples, max_samples=max_samples)
    # The same samples every time; not the job's: they are new to the network.
    return make_dataset(seeded(dataset))


def _check_size(samples: int, *, max_samples: int) -> None:
    if samples > max_samples:
        raise InvalidInput(
            f"the dataset has {samples:,} samples; evaluate takes at most {max_samples:,} "
            "(SERVICE_MAX_EVALUATE_SAMPLES)"
        )


def _check(
    loaded: LoadedNetwork, spec: JobSpec, inputs: torch.Tensor, targets: torch.Tensor
) -> None:
    shape = tuple(inputs.shape[1:])
    if shape != loaded.input_shape:
        raise InvalidInput(
            f"the dataset's samples have shape {list(shape)} but the network takes "
            f"{list(loaded.input_shape)}"
        )
    if spec.task == "classification" and (targets.is_floating_point() or targets.dim() != 1):
        raise InvalidInput(
            "this job is a classification, so the dataset's targets must be class labels "
            "(whole numbers 0, 1, ...), one per sample"
        )


def _forward(loaded: LoadedNetwork, inputs: torch.Tensor) -> torch.Tensor:
    chunks = [
        loaded.forward(inputs[start : start + CHUNK_ROWS])
        for start in range(0, len(inputs), CHUNK_ROWS)
    ]
    return torch.cat(chunks)


def evaluate(
    *, loaded: LoadedNetwork, target: Target, inputs: torch.Tensor, targets: torch.Tensor
) -> EvaluateOut:
    spec = target.spec
    _check(loaded, spec, inputs, targets)
    output = _forward(loaded, inputs.float())
    prepared = prepare_targets(targets, spec=spec)
    checkpoint = CheckpointUsed(epoch=target.epoch, kind=target.kind)
    if spec.task == "classification":
        return _classification(loaded, output, prepared, labels=targets, checkpoint=checkpoint)
    return _regression(loaded, output, prepared, checkpoint=checkpoint)


def _classification(
    loaded: LoadedNetwork,
    output: torch.Tensor,
    prepared: torch.Tensor,
    *,
    labels: torch.Tensor,
    checkpoint: CheckpointUsed,
) -> EvaluateOut:
    classes = 2 if loaded.loss == "bce_with_logits" else output.shape[1]
    if labels.min() < 0 or labels.max() >= classes:
        raise InvalidInput(
            f"the dataset has class labels {int(labels.min())} to {int(labels.max())} but the "
            f"network predicts {classes} classes (0 to {classes - 1})"
        )
    loss = LOSSES[loaded.loss](output, prepared)
    predictions = loaded.outputs(output).predictions
    confusion = torch.zeros((classes, classes), dtype=torch.int64)
    confusion.index_put_(
        (labels.long(), torch.from_numpy(predictions).long()),
        torch.ones(len(labels), dtype=torch.int64),
        accumulate=True,
    )
    per_class = confusion.diag().double() / confusion.sum(dim=1).double()
    return EvaluateOut(
        checkpoint=checkpoint,
        samples=len(labels),
        loss=float(loss),
        accuracy=float(confusion.diag().sum()) / len(labels),
        per_class_accuracy=[None if value != value else float(value) for value in per_class],
        confusion_matrix=confusion.tolist(),
    )


def _regression(
    loaded: LoadedNetwork,
    output: torch.Tensor,
    prepared: torch.Tensor,
    *,
    checkpoint: CheckpointUsed,
) -> EvaluateOut:
    if output.shape != prepared.shape:
        raise InvalidInput(
            f"the dataset's targets have shape {list(prepared.shape[1:])} per sample but the "
            f"network outputs {list(output.shape[1:])}"
        )
    standardization = loaded.standardization
    training_space = prepared if standardization is None else standardization.targets(prepared)
    loss = LOSSES[loaded.loss](output, training_space)
    predicted = torch.from_numpy(loaded.outputs(output).predictions).double()
    actual = prepared.double()
    error = predicted - actual
    # R^2 per output, then averaged (scikit-learn's uniform average); None for constant targets.
    total = ((actual - actual.mean(dim=0)) ** 2).sum(dim=0)
    residual = (error**2).sum(dim=0)
    r2 = None if bool((total == 0).any()) else float((1 - residual / total).mean())
    return EvaluateOut(
        checkpoint=checkpoint,
        samples=len(prepared),
        loss=float(loss),
        mse=float((error**2).mean()),
        mae=float(error.abs().mean()),
        r2=r2,
    )


async def evaluate_job(
    *,
    predictor: Predictor,
    job_id: str,
    owner_id: str,
    dataset: DatasetSpec,
    ref: CheckpointRef | None,
    max_samples: int,
) -> EvaluateOut:
    """Load the checkpoint (or reuse it from the cache) and read an uploaded dataset in one
    transaction; then, with it closed, draw any other dataset and evaluate."""

    def run() -> EvaluateOut:
        with transaction(predictor.sessions) as session:
            target, loaded = predictor.open(session, job_id=job_id, owner_id=owner_id, ref=ref)
            if isinstance(dataset, specs.UploadedData):
                inputs, targets = stored_tensors(
                    session, dataset=dataset, owner_id=owner_id, max_samples=max_samples
                )
        if not isinstance(dataset, specs.UploadedData):
            inputs, targets = drawn_tensors(dataset, max_samples=max_samples)
        return evaluate(loaded=loaded, target=target, inputs=inputs, targets=targets)

    return await anyio.to_thread.run_sync(run)
