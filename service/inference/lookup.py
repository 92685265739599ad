"""Which checkpoint a request means: `best`, `final`, `latest` or an epoch, resolved to a row.

Resolving reads metadata only (job row, checkpoint epoch and sha256); weight blobs are read
only when a network has to be loaded (see loading.py).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from service import jobs, repository_checkpoints
from service.errors import Conflict, InvalidInput, NotFound
from service.schemas import CHECKPOINT_REF_PATTERN
from service.specs import MAX_EPOCHS, JobSpec
from service.statuses import FINAL_STATUSES, JobStatus
from service.tables import Checkpoint

CheckpointRef = Literal["best", "final", "latest"] | int
ResolvedKind = Literal["best", "final", "latest", "periodic"]
NAMED_REFS = ("best", "final", "latest")
REF_HELP = "use best, final, latest or an epoch number"
# A choice can be pruned by the worker's retention before its weights are read: choose again.
RESOLVE_ATTEMPTS = 3


@dataclass(frozen=True)
class Target:
    """A job's checkpoint as a request resolved it: everything but the blobs."""

    job_id: str
    owner_id: str
    spec: JobSpec  # the job's normalised spec
    # A job in a final state never gets another checkpoint, so this resolution holds for good.
    settled: bool
    epoch: int
    sha256: str
    kind: ResolvedKind

    @property
    def key(self) -> tuple[str, int, str]:
        """What identifies the weights: the same epoch retrained after a resume has a new sha256."""
        return (self.job_id, self.epoch, self.sha256)


def parse_ref(value: object) -> CheckpointRef | None:
    """`best`, `final`, `latest`, an epoch number (int or digits), or None for the default."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_EPOCHS:
        return value
    if isinstance(value, str) and re.fullmatch(CHECKPOINT_REF_PATTERN, value):
        return value if value in NAMED_REFS else int(value)  # type: ignore[return-value]
    raise InvalidInput(f"checkpoint {value!r} is not a checkpoint; {REF_HELP}")


def _kind(row: Checkpoint, ref: CheckpointRef) -> ResolvedKind:
    """The name it was asked for by; for an epoch number, its own strongest mark."""
    if isinstance(ref, str):
        return ref
    if row.is_final:
        return "final"
    return "best" if row.is_best else "periodic"


def resolve_checkpoint(
    session: Session, *, job_id: str, owner_id: str, ref: CheckpointRef | None, with_blobs: bool
) -> tuple[Target, Checkpoint]:
    """The checkpoint `ref` names; None means best when the job has one, else latest.

    NotFound for an unknown job or checkpoint, Conflict for a job with no checkpoint yet.
    The job's checkpoints are read in one statement, so the choice and any error message agree
    with each other even while a worker is adding checkpoints (on PostgreSQL each statement of a
    READ COMMITTED transaction sees the newest commits).
    """
    job = jobs.get(session, job_id=job_id, owner_id=owner_id)
    for _ in range(RESOLVE_ATTEMPTS):
        stored = repository_checkpoints.list_checkpoints(session, job_id=job.id)
        row, named = _pick(stored, ref)
        if row is None:
            _missing(job_id=job.id, status=job.status, epoch=job.epoch, ref=named, stored=stored)
        assert row is not None
        if with_blobs:
            loaded = repository_checkpoints.find_checkpoint(session, job_id=job.id, ref=row.epoch)
            if loaded is None:
                continue  # pruned by the worker's retention since the listing: choose again
            row = loaded
        target = Target(
            job_id=job.id,
            owner_id=job.owner_id,
            spec=jobs.stored_spec(job),
            settled=job.status in FINAL_STATUSES,
            epoch=row.epoch,
            sha256=row.sha256,
            kind=_kind(row, named),
        )
        return target, row
    raise Conflict(f"job {job.id}'s checkpoints are changing too fast to pick one; try again")


def _pick(
    stored: Sequence[Checkpoint], ref: CheckpointRef | None
) -> tuple[Checkpoint | None, CheckpointRef]:
    """The row `ref` names among `stored` (oldest first), and the name it was resolved as."""
    if ref is None:
        best, named = _pick(stored, "best")
        return (best, named) if best is not None else _pick(stored, "latest")
    match ref:
        case "best":
            return next((row for row in stored if row.is_best), None), ref
        case "final":
            return next((row for row in stored if row.is_final), None), ref
        case "latest":
            return (stored[-1] if stored else None), ref
        case _:
            return next((row for row in stored if row.epoch == ref), None), ref


def _missing(
    *, job_id: str, status: JobStatus, epoch: int, ref: CheckpointRef, stored: Sequence[Checkpoint]
) -> None:
    if not stored:
        raise Conflict(
            f"job {job_id} has no checkpoint yet (status {status}, epoch {epoch}); "
            "predict once it has stored its first one"
        )
    if ref == "final" and status not in FINAL_STATUSES:
        raise Conflict(
            f"job {job_id} is {status}: it has a final checkpoint once it finishes; "
            "use latest or best meanwhile"
        )
    epochs = ", ".join(str(row.epoch) for row in stored)
    name = ref if isinstance(ref, str) else f"epoch {ref}"
    raise NotFound(
        f"job {job_id} has no {name} checkpoint; it has epochs {epochs} "
        "(GET /v1/jobs/{id}/checkpoints lists them)"
    )
