"""The SQL of fused claims (repository.py's subject, split off by size): the queued jobs a worker
may add to a job it claimed (each then claimed by repository.claim_next_job, named), and the
mark on the first job that it trains fused.

Callers own the transaction: the first job's claim, these reads and these claims are one.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.statuses import JobStatus
from service.tables import Job


def queued_specs(
    session: Session, *, status: JobStatus, limit: int
) -> Sequence[tuple[str, dict[str, Any]]]:
    """(id, stored spec) of the oldest `limit` jobs in `status` (queued), locked for this
    transaction on PostgreSQL (rows another claimer holds are skipped; SQLite serialises
    claimers with BEGIN IMMEDIATE)."""
    query = select(Job.id, Job.spec).where(Job.status == status).order_by(Job.id).limit(limit)
    rows = session.execute(query.with_for_update(skip_locked=True)).all()
    return [(job_id, spec) for job_id, spec in rows]


def mark_fused(
    session: Session, *, job_id: str, lease_token: str, device: str, lease_expires_at: datetime
) -> None:
    """Say on a job claimed in this transaction which run it trains in (`cpu (fused x12)`), and
    extend its lease as far as its partners'."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == lease_token)
        .values(device=device, lease_expires_at=lease_expires_at)
        .execution_options(synchronize_session=False)
    )
