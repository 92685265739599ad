"""A fused run: members trained as one stack, each reported to its own hooks as train() would.

Every step is one batched forward and backward over all members still training and one
vectorised optimizer step. After each epoch every member is judged alone, in train()'s order:
a non-finite loss fails it, then its metrics, early stopping, its hooks' stop, its checkpoint.
A member that ends leaves the stack (it is repacked without it) and the others go on.
"""

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from service.errors import TrainingFailed
from service.training.checkpoints import encode_weights_dict
from service.training.epochs import check_finite_weights, end_epoch
from service.training.fused.compiled import compiled_measure
from service.training.fused.members import (
    Member,
    MemberRun,
    parameter_states,
    start,
    training_state,
)
from service.training.fused.optimizers import StackedOptimizer
from service.training.fused.stack import StackedNetwork, measure
from service.training.hooks import Snapshot
from service.training.loop import TrainingOutcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MemberResult:
    """How a member's training ended: an outcome, or the exception that ended it (what train()
    would have raised for it: TrainingFailed, or whatever its hooks raised)."""

    outcome: TrainingOutcome | None = None
    error: Exception | None = None


class Totals:
    """Per-step losses [members] (and correct counts) of an epoch, read with one sync."""

    def __init__(self) -> None:
        self.losses: list[Tensor] = []
        self.correct: list[Tensor] = []
        self.sizes: list[int] = []

    def add(self, *, losses: Tensor, correct: Tensor | None, size: int) -> None:
        self.losses.append(losses.detach())
        self.sizes.append(size)
        if correct is not None:
            self.correct.append(correct)

    def tensor(self) -> Tensor:
        """[steps (+ steps), members], float64."""
        return torch.stack(self.losses + self.correct).double()

    def read(self, rows: list[list[float]], *, member: int) -> tuple[float, float | None]:
        """(mean loss, accuracy or None) of one member, weighted as metrics.EpochTotals does."""
        steps, samples = len(self.losses), sum(self.sizes)
        weighted = (row[member] * n for row, n in zip(rows[:steps], self.sizes, strict=True))
        loss = math.fsum(weighted) / samples
        if not self.correct:
            return loss, None
        return loss, math.fsum(row[member] for row in rows[steps:]) / samples


def _steps(*, samples: int, batch_size: int, drop_last: bool) -> int:
    return samples // batch_size if drop_last else -(-samples // batch_size)


class FusedRun:
    """The stack of the members still training, and their data, stacked alike."""

    def __init__(self, runs: list[MemberRun], *, compiled: bool = False) -> None:
        self.runs = runs
        self.spec = runs[0].spec  # what the members share: data sizes, network, batches, loss
        self.network = StackedNetwork([run.network for run in runs])
        self.optimizer = StackedOptimizer(
            [run.spec.optimizer for run in runs], parameters=self.network.parameters
        )
        for index, run in enumerate(runs):
            for name, state in parameter_states(run).items():
                self.optimizer.load_member(index, parameter=name, state=state)
        self.train = tuple(
            torch.stack(parts) for parts in zip(*(r.data.train for r in runs), strict=True)
        )
        validation = [run.data.validation for run in runs]
        self.validation = (
            None
            if any(v is None for v in validation)
            else tuple(torch.stack(parts) for parts in zip(*validation, strict=True))
        )
        loss, classification = self.spec.loss, self.spec.task == "classification"
        assert loss is not None
        # The eager step; validation always runs it (no backward there to compile for).
        self.eager = measure(self.network.layers, loss=loss, classification=classification)
        self.measure = self.eager
        self.compiled = False  # whether the step runs compiled (compiled.py)
        if compiled:
            inputs, targets = self.train
            first = slice(0, self.spec.batch_size or inputs.shape[1])
            step = compiled_measure(
                self.network.layers.layers,
                loss=loss,
                classification=classification,
                example=(self.network.parameters, inputs[:, first], targets[:, first]),
            )
            if step is not None:
                self.measure, self.compiled = step, True

    def keep(self, positions: list[int]) -> None:
        """Keep only the members at `positions`."""
        indices = torch.tensor(positions, dtype=torch.int64, device=self.train[0].device)
        self.runs = [self.runs[i] for i in positions]
        self.network.keep(indices)
        self.optimizer.keep(indices)
        self.train = tuple(t.index_select(0, indices) for t in self.train)
        if self.validation is not None:
            self.validation = tuple(t.index_select(0, indices) for t in self.validation)

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """This epoch's batches [members, batch, ...], each member in its own order."""
        inputs, targets = self.train
        spec, samples = self.spec, inputs.shape[1]
        if spec.batch_size is None:
            yield inputs, targets
            return
        steps = _steps(samples=samples, batch_size=spec.batch_size, drop_last=spec.drop_last)
        if not spec.shuffle:
            yield from zip(
                inputs.split(spec.batch_size, dim=1)[:steps],
                targets.split(spec.batch_size, dim=1)[:steps],
                strict=True,
            )
            return
        orders = torch.stack(
            [torch.randperm(samples, generator=run.shuffle) for run in self.runs]
        ).to(inputs.device)
        offsets = torch.arange(len(self.runs), device=inputs.device).unsqueeze(1) * samples
        rows = (orders + offsets).split(spec.batch_size, dim=1)[:steps]
        # Each batch gathered as it is needed: the whole stack's shuffled epoch at once (50 MB
        # for 16 SimpleNNs) would leave the caches before its batches were read.
        flat_inputs, flat_targets = inputs.flatten(0, 1), targets.flatten(0, 1)
        for batch in rows:
            shape = batch.shape
            flat = batch.flatten()
            yield (
                flat_inputs.index_select(0, flat).view(*shape, *inputs.shape[2:]),
                flat_targets.index_select(0, flat).view(*shape, *targets.shape[2:]),
            )

    def train_epoch(self) -> list[Totals]:
        spec = self.spec
        parameters = list(self.network.parameters.values())
        self.optimizer.set_lr([run.lr for run in self.runs])
        totals = Totals()
        for x, y in self.batches():
            for parameter in parameters:
                parameter.grad = None
            losses, correct = self.measure(self.network.parameters, x, y)
            totals.add(losses=losses, correct=correct, size=y.shape[1])
            losses.sum().backward()
            if spec.max_grad_norm is not None:
                _clip(parameters, max_norm=spec.max_grad_norm)
            self.optimizer.step(self.network.parameters)
        measured = [totals]
        if self.validation is not None:
            measured.append(self._validate())
        return measured

    @torch.no_grad()
    def _validate(self) -> Totals:
        inputs, targets = self.validation or ()
        step = self.spec.batch_size or inputs.shape[1]
        totals = Totals()
        for start_at in range(0, inputs.shape[1], step):
            x, y = inputs[:, start_at : start_at + step], targets[:, start_at : start_at + step]
            losses, correct = self.eager(self.network.parameters, x, y)
            totals.add(losses=losses, correct=correct, size=y.shape[1])
        return totals


def _clip(parameters: list[Tensor], *, max_norm: float) -> None:
    """Each member's gradients scaled to a total norm of at most max_norm, as clip_grad_norm_."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)
    coefficient = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coefficient.view(-1, *([1] * (g.dim() - 1))))


def _finish_epoch(
    run: MemberRun,
    *,
    fused: FusedRun,
    position: int,
    values: list[tuple[float, float | None]],
    seconds: float,
) -> MemberResult | None:
    """Judge one member after an epoch as train() does (end_epoch); a result when its training
    ended."""
    spec, hooks = run.spec, run.member.hooks
    run.epoch += 1
    epoch = run.epoch
    end = end_epoch(
        spec,
        epoch=epoch,
        lr=run.lr,
        numbers=values,
        seconds=seconds,
        schedule=run.schedule,
        hooks=hooks,
        best=run.best,
        patience=run.patience,
        pace=run.pace,
    )
    run.best, run.patience = end.best, end.patience
    if end.checkpoint:
        weights = fused.network.member_weights(position)
        check_finite_weights(weights, epoch=epoch)
        optimizer = {
            name: fused.optimizer.member_state(position, parameter=name) for name in weights
        }
        snapshot = Snapshot(
            epoch=epoch,
            kinds=end.checkpoint,
            metric=end.metric,
            weights=encode_weights_dict(weights),
            state=training_state(run, weights=weights, optimizer=optimizer),
        )
        hooks.on_checkpoint(snapshot)
    if end.last:
        return MemberResult(outcome=TrainingOutcome(epoch=epoch, stop=end.stop))
    return None


def train_fused(
    members: Sequence[Member],
    *,
    device: torch.device,
    on_leave: Callable[[int, MemberResult], None] | None = None,
    compiled: bool = False,
) -> list[MemberResult]:
    """Train members of one fusion key (see grouping.fusion_key) together; each member's result
    in their order. Each member's hooks see what train() would show them; `on_leave` hears of
    each member's result (by its index) the moment it leaves, while the others train on.
    `compiled`: compile the step (compiled.py: faster on the CPU, not bit for bit solo)."""
    results: dict[int, MemberResult] = {}

    def leaves(index: int, result: MemberResult) -> None:
        results[index] = result
        if on_leave is not None:
            on_leave(index, result)

    runs: list[MemberRun] = []
    indices: list[int] = []
    for index, member in enumerate(members):
        try:
            run = start(member, device=device)
        except Exception as exc:  # its checkpoint unreadable, say: only it fails
            leaves(index, MemberResult(error=exc))
            continue
        if run.epoch >= member.spec.epochs:
            leaves(index, MemberResult(outcome=TrainingOutcome(epoch=run.epoch, stop=None)))
            continue
        runs.append(run)
        indices.append(index)
    fused = FusedRun(runs, compiled=compiled) if runs else None
    if fused is not None:
        how = "compiled" if fused.compiled else "eagerly"
        logger.info("training %d members fused on %s, %s", len(runs), device, how)
    while fused is not None and fused.runs:
        started = time.perf_counter()
        try:
            measured = fused.train_epoch()
            rows = torch.cat([t.tensor() for t in measured]).tolist()
        except RuntimeError as exc:  # out of memory, or a shape the dry run could not foresee
            for run, index in zip(fused.runs, indices, strict=True):
                error = TrainingFailed(f"training failed at epoch {run.epoch + 1}: {exc}")
                leaves(index, MemberResult(error=error))
            break
        seconds = time.perf_counter() - started
        staying: list[int] = []
        for position, run in enumerate(fused.runs):
            values, offset = [], 0
            for totals in measured:
                height = len(totals.losses) + len(totals.correct)
                values.append(totals.read(rows[offset : offset + height], member=position))
                offset += height
            try:
                result = _finish_epoch(
                    run, fused=fused, position=position, values=values, seconds=seconds
                )
            except Exception as exc:
                result = MemberResult(error=exc)
            if result is None:
                staying.append(position)
            else:
                leaves(indices[position], result)
        if not staying:
            break
        if len(staying) < len(fused.runs):
            fused.keep(staying)
            indices = [indices[i] for i in staying]
    return [results[index] for index in range(len(members))]
