"""The training run: a normalised spec in, metrics and checkpoints out through the hooks.

`train` reads top to bottom like the tutorials' scripts, in their order: seed, make the data,
build the network, loop over epochs. Each checkpoint carries everything a resume needs, so a
resumed run gives bit-identical losses and weights on the CPU.
"""

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LRScheduler

from service.errors import TrainingFailed
from service.specs import JobSpec
from service.training import holdout, randomness
from service.training.batches import Batches
from service.training.checkpoints import (
    TrainingState,
    decode_state,
    encode_state,
    encode_weights,
    load_weights,
)
from service.training.early_stopping import Patience
from service.training.epochs import CheckpointPace, check_finite_weights, end_epoch
from service.training.hooks import (
    CheckpointKind,
    Resume,
    Snapshot,
    StopReason,
    TrainingHooks,
)
from service.training.job_data import Tensors, prepare_data
from service.training.losses import LOSSES, LossFunction
from service.training.metrics import EpochTotals, read_totals
from service.training.networks import build_network
from service.training.optimizers import (
    build_optimizer,
    build_schedule,
    clip_gradients,
    current_lr,
    step_function,
)
from service.training.pictures import Pictures

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingOutcome:
    epoch: int  # the last finished epoch
    stop: StopReason | None  # why training ended before its last epoch; None if it trained all


def _autocast(
    spec: JobSpec, *, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager[object]]:
    """A fresh context for each forward pass: bf16 autocast on CUDA, or nothing."""
    if spec.precision == "bf16" and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


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
    checkpoint_seconds: float = 0.0,
) -> TrainingOutcome:
    """Train the network a normalised spec (see plan.plan) describes, reporting through hooks;
    the default cadence's checkpoints at least `checkpoint_seconds` apart (epochs.CheckpointPace).

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
    pace = CheckpointPace(checkpoint_seconds)
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
            pace=pace,
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
