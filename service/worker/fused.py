"""Fused runs in the worker: after claiming a job, claim in the same transaction the queued jobs
that may train with it (training/fused/grouping.py), then train them as one run, each member
under its own lease, writer and hooks, settled as a solo job is (Worker.settle) the moment it
leaves the run.

How many train together: at most SERVICE_FUSE_MAX_JOBS, and no more than keeps the stack's
activations under SERVICE_FUSE_MAX_ACTIVATION_BYTES (by default the CPU's last-level cache);
within that, the size this worker measured to train that kind of job fastest per member
(training/fused/sizing.py, once per kind, SERVICE_FUSE_MEASURE). Further jobs of the same kind
are claimed as the next group.
"""

import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
from sqlalchemy.orm import Session

from service import fused_repository, jobs, repository
from service.settings import Settings
from service.specs import JobSpec
from service.tables import Job
from service.training.fused.grouping import fusion_key
from service.training.fused.loop import MemberResult, train_fused
from service.training.fused.members import Member
from service.training.fused.sizing import largest_near_best, step_samples, time_per_member
from service.training.hooks import Resume
from service.training.loop import TrainingOutcome
from service.training.plan import job_shape
from service.training.tracing import trace_network
from service.worker.hooks import DatabaseHooks
from service.worker.pruner import TrialPruner
from service.worker.writer import SharedFlush

if TYPE_CHECKING:
    from service.worker.loop import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """A job claimed in this transaction: its lease token and, once the worker has read them
    in the same transaction, what it resumes from and its pruner (a sweep's trial)."""

    job: Job
    lease_token: str
    resume: Resume | None = None
    pruner: TrialPruner | None = None


def activation_bytes(spec: JobSpec) -> int:
    """What one member's forward pass holds for a step: every layer's output, float32."""
    shape = job_shape(spec)
    traced = trace_network(spec.model.layers, input_shape=shape.input_shape)
    outputs = [*traced.input_shapes[1:], traced.output_shape]
    per_sample = sum(math.prod(each[1:]) for each in outputs)
    return 4 * per_sample * step_samples(spec)


def group_size(spec: JobSpec, *, max_jobs: int, activation_budget: int) -> int:
    """How many jobs of this spec's kind train in one stack: at most `max_jobs`, and no more
    than hold `activation_budget` bytes of activations between them."""
    fitting = activation_budget // max(1, activation_bytes(spec))
    return max(1, min(max_jobs, fitting))


def _key(spec: dict[str, Any]) -> str | None:
    try:
        return fusion_key(JobSpec.model_validate(spec))
    except ValueError:  # a spec this version cannot read trains solo, and fails there
        return None


class GroupSizes:
    """The group size this worker measured for each kind of job (fusion key) on its device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.known: dict[str, int] = {}

    def measured(self, spec: JobSpec, *, key: str, limit: int) -> int:
        """The size, at most `limit`, whose stacked step costs least per member (measured the
        first time this kind comes, in about a second at most)."""
        if limit <= 1:
            return limit
        if key not in self.known:
            timings = time_per_member(spec, device=self.device, limit=limit)
            self.known[key] = largest_near_best(timings)
            log.info(
                "fused groups of %s: %d (microseconds a member by group size: %s)",
                " ".join(layer.type for layer in spec.model.layers),
                self.known[key],
                ", ".join(f"{size}: {seconds * 1e6:.0f}" for size, seconds in timings.items()),
            )
        return min(limit, self.known[key])


def claim_partners(
    session: Session,
    *,
    first: Job,
    lease_prefix: str,
    device: str,
    activation_budget: int,
    sizes: GroupSizes,
    compiled: bool,
    settings: Settings,
) -> list[Claimed]:
    """Claim the queued jobs that train fused with `first` (just claimed in this transaction),
    oldest first; empty when fusion is off, `first` trains solo, or none matches.
    `activation_budget`: the worker's devices.fuse_activation_budget; `sizes`: its measured
    group sizes; `compiled`: whether it compiles its fused steps (the jobs' device says so)."""
    if settings.fuse_max_jobs == 1:
        return []
    # The queue first: a lone job (the common case) pays one query, not a traced network.
    candidates = fused_repository.queued_specs(
        session, status=jobs.CLAIM_FROM, limit=settings.fuse_scan_jobs
    )
    if not candidates:
        return []
    key = _key(first.spec)
    if key is None:
        return []
    matching = [job_id for job_id, spec in candidates if _key(spec) == key]
    if not matching:
        return []
    spec = jobs.stored_spec(first)
    size = group_size(spec, max_jobs=settings.fuse_max_jobs, activation_budget=activation_budget)
    if settings.fuse_measure:
        size = sizes.measured(spec, key=key, limit=size)
    chosen = matching[: size - 1]
    if not chosen:
        return []
    label = f"{device} (fused x{len(chosen) + 1}{', compiled' if compiled else ''})"
    assert first.lease_owner is not None
    # Leases from now: choosing the partners took time since the first job's claim.
    moment = jobs.now()
    expires = moment + timedelta(seconds=settings.lease_seconds)
    fused_repository.mark_fused(
        session,
        job_id=first.id,
        lease_token=first.lease_owner,
        device=label,
        lease_expires_at=expires,
    )
    first.device, first.lease_expires_at = label, expires
    claimed = []
    for job_id in chosen:
        token = f"{lease_prefix}:{secrets.token_hex(4)}"
        job = repository.claim_next_job(
            session,
            job_id=job_id,
            from_status=jobs.CLAIM_FROM,
            to_status=jobs.CLAIM_TO,
            lease_token=token,
            lease_expires_at=expires,
            now=moment,
            device=label,
        )
        if job is not None:
            claimed.append(Claimed(job=job, lease_token=token))
    return claimed


def _gives(result: MemberResult) -> Callable[[], TrainingOutcome]:
    """Worker.settle's `work` for a member whose training already ended."""

    def work() -> TrainingOutcome:
        if result.error is not None:
            raise result.error
        assert result.outcome is not None
        return result.outcome

    return work


def run_group(worker: "Worker", *, claimed: list[Claimed]) -> None:
    """Train the claimed jobs as one fused run; each is settled as it leaves."""
    # One writing thread for every member: their leases renewed together, one commit each
    # flush interval. Started first and every member joined to it before any reads its data,
    # so no lease lapses while the members after it read theirs.
    shared = SharedFlush(
        sessions=worker.sessions, flush_seconds=worker.settings.metrics_flush_seconds
    )
    shared.start()
    try:
        _run_members(worker, claimed=claimed, shared=shared)
    finally:
        shared.stop()


def _run_members(worker: "Worker", *, claimed: list[Claimed], shared: SharedFlush) -> None:
    started = []
    for each in claimed:
        job = each.job
        assert job.started_at is not None
        log.info(
            "job %s claimed (attempt %d) by %s, %s",
            job.id,
            job.attempt,
            each.lease_token,
            job.device,
        )
        hooks = worker.hooks_for(each, shared=shared)
        hooks.writer.start()
        started.append((jobs.stored_spec(job), hooks, each.resume))
    members: list[Member] = []
    hooks_of: list[DatabaseHooks] = []
    for spec, hooks, resume in started:
        try:
            uploaded = worker.load_uploaded(spec)
        except Exception as exc:
            worker.settle(hooks, work=_gives(MemberResult(error=exc)))
            continue
        members.append(
            Member(
                spec=spec,
                hooks=hooks,
                resume=resume,
                uploaded=uploaded,
                checkpoint_seconds=worker.settings.checkpoint_seconds,
            )
        )
        hooks_of.append(hooks)

    def leave(index: int, result: MemberResult) -> None:
        worker.settle(hooks_of[index], work=_gives(result))

    train_fused(members, device=worker.device, on_leave=leave, compiled=worker.compile_fused)
