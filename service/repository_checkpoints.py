"""The SQL of checkpoints: storing one epoch's checkpoint (moving the best mark, pruning old
periodic ones), listing a job's checkpoints and finding one by reference; split off
repository.py by subject. Callers own the transaction."""

from collections.abc import Sequence

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, defer

from service.tables import Checkpoint

# Listing checkpoints or datasets reads metadata; the blobs stay in the database.
CHECKPOINT_METADATA_ONLY = (defer(Checkpoint.weights), defer(Checkpoint.state))


def save_checkpoint(session: Session, *, checkpoint: Checkpoint, keep_periodic: int) -> None:
    """Store one epoch's checkpoint in place of any stored for that epoch, move the best mark to
    it and prune old periodic ones: a DELETE, an UPDATE when it is best, an INSERT."""
    job_id, epoch = checkpoint.job_id, checkpoint.epoch
    # The periodic checkpoints kept besides this one, which is kept whatever its kinds: a resume
    # starts from the newest.
    kept_periodic = (
        select(Checkpoint.epoch)
        .where(Checkpoint.job_id == job_id, Checkpoint.is_periodic, Checkpoint.epoch != epoch)
        .order_by(Checkpoint.epoch.desc())
        .limit(keep_periodic - 1 if checkpoint.is_periodic else keep_periodic)
    )
    prunable = and_(~Checkpoint.is_final, Checkpoint.epoch.not_in(kept_periodic))
    if not checkpoint.is_best:
        prunable = and_(prunable, ~Checkpoint.is_best)
    session.execute(
        delete(Checkpoint).where(
            Checkpoint.job_id == job_id, or_(Checkpoint.epoch == epoch, prunable)
        )
    )
    if checkpoint.is_best:
        # Only the row that has it: an UPDATE rewrites each row it touches, blobs and all.
        session.execute(
            update(Checkpoint)
            .where(Checkpoint.job_id == job_id, Checkpoint.is_best)
            .values(is_best=False)
            .execution_options(synchronize_session=False)
        )
    session.add(checkpoint)
    session.flush()


def list_checkpoints(session: Session, *, job_id: str) -> Sequence[Checkpoint]:
    """Metadata only: the weight blobs are not loaded."""
    query = (
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .order_by(Checkpoint.epoch)
        .options(*CHECKPOINT_METADATA_ONLY)
    )
    return session.scalars(query).all()


def find_checkpoint(
    session: Session, *, job_id: str, ref: str | int, with_blobs: bool = True
) -> Checkpoint | None:
    """`ref` is "best", "final", "latest" or an epoch number."""
    query = select(Checkpoint).where(Checkpoint.job_id == job_id)
    if not with_blobs:
        query = query.options(*CHECKPOINT_METADATA_ONLY)
    match ref:
        case "best":
            query = query.where(Checkpoint.is_best)
        case "final":
            query = query.where(Checkpoint.is_final)
        case "latest":
            query = query.order_by(Checkpoint.epoch.desc()).limit(1)
        case int(epoch):
            query = query.where(Checkpoint.epoch == epoch)
        case _:
            return None
    return session.scalars(query).first()
