"""Which checkpoint a request means: `best`, `final`, `latest` or an epoch, resolved to a row.

Resolving reads metadata only (job row, checkpoint epoch and sha256); weight blobs are read
only when a network has to be loaded (see loading.py).
"""

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from service import jobs, repository
from service.errors import Conflict, InvalidInput, NotFound
from service.tables import Checkpoint

CheckpointRef = Literal["best", "final", "latest"] | int
CheckpointKind = Literal["best", "final", "latest", "periodic"]
NAMED_REFS = ("best", "final", "latest")
REF_HELP = "use best, final, latest or an epoch number"


@dataclass(frozen=True)
class Target:
    """A job's checkpoint as a request resolved it: everything but the blobs."""

    job_id: str
    owner_id: str
    spec: dict[str, Any]  # the job's normalised spec, as stored
    # A job in a final state never gets another checkpoint, so this resolution holds for good.
    settled: bool
    epoch: int
    sha256: str
    kind: CheckpointKind

    @property
    def key(self) -> tuple[str, int, str]:
        """What identifies the weights: the same epoch retrained after a resume has a new sha256."""
        return (self.job_id, self.epoch, self.sha256)


def parse_ref(value: object) -> CheckpointRef | None:
    """`best`, `final`, `latest`, an epoch number (int or digits), or None for the default."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str):
        if value in NAMED_REFS:
            return value  # type: ignore[return-value]
        if value.isdigit() and int(value) >= 1:
            return int(value)
    raise InvalidInput(f"checkpoint {value!r} is not a checkpoint; {REF_HELP}")


def _kind(row: Checkpoint, ref: CheckpointRef) -> CheckpointKind:
    """The name it was asked for by; for an epoch number, its own strongest mark."""
    if isinstance(ref, str):
        return ref
    if row.is_final:
        return "final"
    return "best" if row.is_best else "periodic"


def find_checkpoint(
    session: Session, *, job_id: str, owner_id: str, ref: CheckpointRef | None, with_blobs: bool
) -> tuple[Target, Checkpoint]:
    """The checkpoint `ref` names; None means best when the job has one, else latest.

    NotFound for an unknown job or checkpoint, Conflict for a job with no checkpoint yet.
    """
    job = jobs.get(session, job_id=job_id, owner_id=owner_id)
    if ref is None:
        row = repository.find_checkpoint(session, job_id=job.id, ref="best", with_blobs=with_blobs)
        ref = "best"
        if row is None:
            row = repository.find_checkpoint(
                session, job_id=job.id, ref="latest", with_blobs=with_blobs
            )
            ref = "latest"
    else:
        row = repository.find_checkpoint(session, job_id=job.id, ref=ref, with_blobs=with_blobs)
    settled = job.status in jobs.FINAL_STATUSES
    if row is None:
        _missing(session, job_id=job.id, status=job.status, epoch=job.epoch, ref=ref)
    assert row is not None
    target = Target(
        job_id=job.id,
        owner_id=job.owner_id,
        spec=job.spec,
        settled=settled,
        epoch=row.epoch,
        sha256=row.sha256,
        kind=_kind(row, ref),
    )
    return target, row


def _missing(session: Session, *, job_id: str, status: str, epoch: int, ref: CheckpointRef) -> None:
    stored = repository.list_checkpoints(session, job_id=job_id)
    if not stored:
        raise Conflict(
            f"job {job_id} has no checkpoint yet (status {status}, epoch {epoch}); "
            "predict once it has stored its first one"
        )
    if ref == "final" and status not in jobs.FINAL_STATUSES:
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
