"""The training run: a normalised spec in, metrics and checkpoints out through the hooks.

`train` reads top to bottom like the tutorials' scripts, in their order: seed, make the data,
build the network, loop over epochs. Each checkpoint carries everything a resume needs, so a
resumed run gives bit-identical losses and weights on the CPU.
"""

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LRScheduler

from service.errors import TrainingFailed
from service.specs import JobSpec
from service.training import early_stopping, holdout, randomness
from service.training.batches import Batches
from service.training.checkpoints import (
    TrainingState,
    decode_state,
    encode_state,
    encode_weights,
    load_weights,
)
from service.training.datasets import make_dataset
from service.training.early_stopping import Patience
from service.training.hooks import (
    CheckpointKind,
    EpochResult,
    Resume,
    Snapshot,
    StopKind,
    StopReason,
    TrainingHooks,
)
from service.training.losses import LOSSES, LossFunction
from service.training.metrics import EpochTotals, improves, read_totals
from service.training.networks import build_network
from service.training.optimizers import (
    build_optimizer,
    build_schedule,
    clip_gradients,
    current_lr,
    step_function,
)
from service.training.pictures import Pictures, pixel_statistics
from service.training.standardize import Standardization

logger = logging.getLogger(__name__)

Tensors = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TrainingOutcome:
    epoch: int  # the last finished epoch
    stop: StopReason | None  # why training ended before its last epoch; None if it trained all


@dataclass(frozen=True)
class PreparedData:
    """The job's data on the device: training split, validation split, their statistics.
    Pictures stay uint8 (`images`): each batch is scaled with `standardization` as it is made."""

    train: Tensors
    validation: Tensors | None
    standardization: Standardization | None
    images: bool = False


def prepare_targets(targets: torch.Tensor, *, spec: JobSpec) -> torch.Tensor:
    """Targets as the loss takes them: int64 labels (N,) for cross_entropy; float32 (N, 1) for
    bce_with_logits; float32 (N, k) for regression, where class labels are read as values."""
    if spec.loss == "cross_entropy":
        return targets.long()
    if spec.loss == "bce_with_logits" or targets.dim() == 1:
        return targets.float().unsqueeze(1)
    return targets.float()


def prepare_data(
    spec: JobSpec, *, seed: int, device: torch.device, uploaded: Tensors | None
) -> PreparedData:
    """Generate, split and standardise the data on the CPU, then move it to the device once."""
    inputs, targets = make_dataset(spec.dataset, uploaded=uploaded)
    train, held_out = holdout.split(
        inputs=inputs,
        targets=prepare_targets(targets, spec=spec),
        fraction=spec.validation_fraction,
        # Its own stream: a validation split leaves the initial weights as they were.
        generator=randomness.generator(seed, stream="validation"),
    )
    standardization = None
    images = inputs.dtype == torch.uint8
    if images:
        per_channel = spec.normalize == "per_channel"
        standardization = pixel_statistics(train[0], per_channel=per_channel)
    elif spec.standardize:
        regression = spec.task == "regression"
        standardization = Standardization.fit(
            inputs=train[0], targets=train[1] if regression else None
        )
        train = standardization.apply(train)
        held_out = standardization.apply(held_out) if held_out is not None else None
    return PreparedData(
        train=(train[0].to(device), train[1].to(device)),
        validation=None if held_out is None else (held_out[0].to(device), held_out[1].to(device)),
        standardization=standardization,
        images=images,
    )


def checkpoint_kinds(spec: JobSpec, *, epoch: int, stop: StopReason | None) -> set[CheckpointKind]:
    """The kinds of checkpoint `epoch` takes, if any (the best is decided by the caller)."""
    # Early stopping ends the job where it is: that epoch is its last, as `final` says.
    if epoch == spec.epochs or (stop is not None and stop.kind == StopKind.EARLY_STOPPED):
        return {"final"}
    if stop is not None or epoch % (spec.checkpoint_every or 1) == 0:
        return {"periodic"}
    return set()


@dataclass(frozen=True)
class EpochEnd:
    """What an epoch's numbers decide (end_epoch), for the loop to act on."""

    stop: StopReason | None  # why training ends after this epoch, short of its last; else None
    checkpoint: frozenset[CheckpointKind]  # the kinds of this epoch's checkpoint; empty: none
    metric: float | None  # this epoch's value of the spec's best_metric
    best: float | None  # the best value so far, this epoch's included
    patience: Patience  # early stopping's count after this epoch
    last: bool  # training ends after this epoch: stopped, or its last


def end_epoch(
    spec: JobSpec,
    *,
    epoch: int,
    lr: float,
    numbers: Sequence[tuple[float, float | None]],
    seconds: float,
    schedule: LRScheduler | None,
    hooks: TrainingHooks,
    best: float | None,
    patience: Patience,
) -> EpochEnd:
    """An epoch's end, the same for a solo run and each fused member: check its loss, step the
    schedule, report its metrics, count early stopping, ask the hooks whether to stop, and
    decide its checkpoint. `numbers`: (loss, accuracy) of the training split, then of the
    validation split if there is one; `lr` the rate the epoch trained with.

    Raises TrainingFailed if a loss is not finite."""
    assert spec.best_metric is not None
    (loss, accuracy), *validated = numbers
    val_loss, val_accuracy = validated[0] if validated else (None, None)
    check_finite(loss=loss, val_loss=val_loss, epoch=epoch, lr=lr)
    if schedule is not None:
        schedule.step()
    metrics = EpochResult(
        epoch=epoch,
        loss=loss,
        accuracy=accuracy,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        lr=lr,
        seconds=seconds,
    )
    hooks.on_epoch(metrics)
    stopped_early = None
    if spec.early_stopping is not None:
        patience, stopped_early = early_stopping.observe(
            patience, rule=spec.early_stopping, epoch=epoch, metrics=metrics
        )
    # The last epoch ends training anyway, with nothing cut short. Early stopping goes before
    # the hooks: the job's work is done, and a shutdown handing it back would resume it past
    # the epoch it stopped at.
    stop = None if epoch == spec.epochs else stopped_early or hooks.should_stop(epoch=epoch)
    kinds = checkpoint_kinds(spec, epoch=epoch, stop=stop)
    metric = getattr(metrics, spec.best_metric)
    if kinds and improves(metric, best=best, metric=spec.best_metric):
        kinds.add("best")
        best = metric
    return EpochEnd(
        stop=stop,
        checkpoint=frozenset(kinds),
        metric=metric,
        best=best,
        patience=patience,
        last=stop is not None or epoch == spec.epochs,
    )


def _autocast(
    spec: JobSpec, *, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager[object]]:
    """A fresh context for each forward pass: bf16 autocast on CUDA, or nothing."""
    if spec.precision == "bf16" and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def check_finite(*, loss: float, val_loss: float | None, epoch: int, lr: float) -> None:
    """Raise TrainingFailed, naming the epoch, if an epoch's loss is not a finite number."""
    for name, value in (("loss", loss), ("validation loss", val_loss)):
        if value is not None and not math.isfinite(value):
            raise TrainingFailed(
                f"{name} became {value} at epoch {epoch}; lower the learning rate "
                f"(now {lr:g}), set max_grad_norm, or set standardize true"
            )


def check_finite_weights(weights: dict[str, torch.Tensor], *, epoch: int) -> None:
    """Raise TrainingFailed if a weight is not finite: such a checkpoint is never stored."""
    tensors = [t for t in weights.values() if t.is_floating_point()]
    if tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
        raise TrainingFailed(
            f"the weights became non-finite at epoch {epoch}; lower the learning rate "
            "or set max_grad_norm"
        )


def _restore(
    resume: Resume,
    *,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: LRScheduler | None,
    shuffle: torch.Generator,
    augment: torch.Generator,
    device: torch.device,
) -> TrainingState:
    """Put the run back where the checkpoint left it; returns the state it read, which holds
    the best metric and early stopping's count so far."""
    state = decode_state(resume.state)
    load_weights(network, resume.weights)
    optimizer.load_state_dict(state.optimizer)
    if schedule is not None and state.schedule is not None:
        schedule.load_state_dict(state.schedule)
    randomness.restore_global_states(state.rng, device=device)
    shuffle.set_state(state.rng["shuffle"])
    if "augment" in state.rng:
        augment.set_state(state.rng["augment"])
    return state


def _train_epoch(
    network: torch.nn.Module,
    *,
    batches: Batches,
    parameters: list[torch.nn.Parameter],
    step: Callable[[], object],
    loss_function: LossFunction,
    totals: EpochTotals,
    max_grad_norm: float | None,
    pictures: Pictures | None,
    autocast: Callable[[], contextlib.AbstractContextManager[object]],
) -> None:
    for x, y in batches:
        inputs = x if pictures is None else pictures.training(x)
        with autocast():
            output = network(inputs)
            loss = loss_function(output, y)
        totals.add(loss=loss, output=output, target=y)
        # optimizer.zero_grad() without its profiler span: the same None gradients, which
        # backward then writes instead of adding to. About 40 us of a SimpleNN step.
        for parameter in parameters:
            parameter.grad = None
        loss.backward()
        clip_gradients(parameters, max_norm=max_grad_norm)
        step()


def _checkpoint(
    *,
    epoch: int,
    kinds: frozenset[CheckpointKind],
    metric: float | None,
    network: torch.nn.Module,
    state: TrainingState,
) -> Snapshot:
    check_finite_weights(network.state_dict(), epoch=epoch)
    return Snapshot(
        epoch=epoch,
        kinds=kinds,
        metric=metric,
        weights=encode_weights(network),
        state=encode_state(state),
    )


def train(
    spec: JobSpec,
    *,
    device: torch.device,
    hooks: TrainingHooks,
    resume: Resume | None = None,
    uploaded: Tensors | None = None,
) -> TrainingOutcome:
    """Train the network a normalised spec (see plan.plan) describes, reporting through hooks.

    Raises TrainingFailed when the loss or the weights stop being finite, or the network fails.
    """
    if spec.seed is None or spec.task is None or spec.loss is None or spec.best_metric is None:
        raise ValueError("train() needs a normalised spec; pass it through plan() first")
    seed, loss_name = spec.seed, spec.loss
    classification = spec.task == "classification"

    if spec.precision == "bf16" and device.type != "cuda":
        raise TrainingFailed(
            f"precision 'bf16' is CUDA autocast, but this worker trains on {device}; "
            "use precision 'fp32'"
        )
    autocast = _autocast(spec, device=device)

    # The tutorials' order: the network draws its initial weights after the data is drawn.
    randomness.seed_everything(seed)
    data = prepare_data(spec, seed=seed, device=device, uploaded=uploaded)
    network = build_network(spec.model.layers, device=device)
    optimizer = build_optimizer(spec.optimizer, parameters=network.parameters())
    schedule = build_schedule(spec.schedule, optimizer=optimizer, epochs=spec.epochs)
    loss_function = LOSSES[loss_name]
    batches = Batches(
        inputs=data.train[0],
        targets=data.train[1],
        batch_size=spec.batch_size,
        shuffle=spec.shuffle,
        drop_last=spec.drop_last,
        generator=randomness.generator(seed, stream="shuffle"),
    )
    # Its own stream, so augmenting leaves the order of batches and Dropout's draws alone.
    augment_stream = randomness.generator(seed, stream="augment")
    pictures = None
    if data.images and data.standardization is not None:
        pictures = Pictures(
            scaling=data.standardization, augmentation=spec.augment, generator=augment_stream
        )
    best: float | None = None
    # Early stopping's count, kept (and checkpointed) only when the spec asks for it.
    rule = spec.early_stopping
    patience = Patience()
    first_epoch = 1
    if resume is not None:
        restored = _restore(
            resume,
            network=network,
            optimizer=optimizer,
            schedule=schedule,
            shuffle=batches.generator,
            augment=augment_stream,
            device=device,
        )
        best = restored.best
        # A checkpoint from before early stopping existed has no count: it starts afresh.
        patience = restored.patience or patience
        first_epoch = resume.epoch + 1
    logger.info(
        "training %r on %s from epoch %d of %d", spec.name, device, first_epoch, spec.epochs
    )

    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    step = step_function(optimizer)
    network.train()
    for epoch in range(first_epoch, spec.epochs + 1):
        started = time.perf_counter()
        lr = current_lr(optimizer)
        totals = EpochTotals(loss=loss_name, classification=classification)
        try:
            _train_epoch(
                network,
                batches=batches,
                parameters=parameters,
                step=step,
                loss_function=loss_function,
                totals=totals,
                max_grad_norm=spec.max_grad_norm,
                pictures=pictures,
                autocast=autocast,
            )
            measured = [totals]
            if data.validation is not None:
                measured.append(
                    holdout.evaluate(
                        network,
                        data=data.validation,
                        loss_function=loss_function,
                        loss=loss_name,
                        classification=classification,
                        batch_size=spec.batch_size,
                        prepare=None if pictures is None else pictures.evaluation,
                        autocast=autocast,
                    )
                )
            # The epoch's one sync: every number leaves the device here, together.
            numbers = read_totals(*measured)
        except RuntimeError as exc:  # out of memory, or a shape the dry run could not foresee
            raise TrainingFailed(f"training failed at epoch {epoch}: {exc}") from exc
        end = end_epoch(
            spec,
            epoch=epoch,
            lr=lr,
            numbers=numbers,
            seconds=time.perf_counter() - started,
            schedule=schedule,
            hooks=hooks,
            best=best,
            patience=patience,
        )
        best, patience = end.best, end.patience
        if end.checkpoint:
            state = TrainingState(
                epoch=epoch,
                optimizer=optimizer.state_dict(),
                schedule=None if schedule is None else schedule.state_dict(),
                rng={
                    **randomness.global_states(device),
                    "shuffle": batches.generator.get_state(),
                    **({"augment": augment_stream.get_state()} if pictures is not None else {}),
                },
                best=best,
                standardization=data.standardization,
                patience=patience if rule is not None else None,
                pictures_normalize=None if pictures is None else spec.normalize or "none",
            )
            snapshot = _checkpoint(
                epoch=epoch, kinds=end.checkpoint, metric=end.metric, network=network, state=state
            )
            hooks.on_checkpoint(snapshot)
        if end.stop is not None:
            return TrainingOutcome(epoch=epoch, stop=end.stop)
    return TrainingOutcome(epoch=spec.epochs, stop=None)
