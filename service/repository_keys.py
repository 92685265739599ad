"""The SQL of API keys: adding, finding and counting them, listing, revoking and marking their
use. Callers own the transaction."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.tables import ApiKey


def add_api_key(session: Session, *, key: ApiKey) -> None:
    session.add(key)
    session.flush()


def find_api_key(session: Session, *, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).one_or_none()


def count_api_keys(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ApiKey)) or 0


def list_api_keys(session: Session) -> Sequence[ApiKey]:
    """Every key, oldest first."""
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()


def api_keys_named(session: Session, *, name: str) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).where(ApiKey.name == name)).all()


def revoke_api_keys(session: Session, *, name: str, now: datetime) -> int:
    """Revoke the keys of that name not revoked yet; how many."""
    statement = (
        update(ApiKey)
        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def mark_api_key_used(session: Session, *, key_id: str, now: datetime) -> None:
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(statement)
