"""A checkpoint committed while a predict request resolves `latest` gives one consistent answer.

On PostgreSQL each statement of a READ COMMITTED transaction sees the newest commits; a lookup
that found no checkpoint and then listed them for its error message once answered 404 "no latest
checkpoint; it has epochs 5". The hook below commits a checkpoint right after the lookup's first
read of the checkpoints table, every time.
"""

from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from service import repository_checkpoints
from service.db import transaction
from service.errors import Conflict
from service.inference.lookup import resolve_checkpoint
from service.settings import Settings
from service.tables import Checkpoint
from tests.jobs import queue, read


def test_a_checkpoint_arriving_mid_lookup_does_not_make_it_contradict_itself(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings
) -> None:
    [job_id] = queue(sessions, settings)
    owner_id = read(sessions, job_id).owner_id
    arrived = []

    def commit_a_checkpoint(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if arrived or "FROM checkpoints" not in statement:
            return
        arrived.append(True)
        row = Checkpoint(
            job_id=job_id,
            epoch=5,
            is_periodic=True,
            sha256="0" * 64,
            size_bytes=1,
            weights=b"w",
            state=b"s",
        )
        with transaction(sessions, immediate=True) as other:
            repository_checkpoints.save_checkpoint(other, checkpoint=row, keep_periodic=3)

    event.listen(engine, "after_cursor_execute", commit_a_checkpoint)
    try:
        with transaction(sessions) as session, pytest.raises(Conflict) as refused:
            resolve_checkpoint(
                session, job_id=job_id, owner_id=owner_id, ref="latest", with_blobs=False
            )
    finally:
        event.remove(engine, "after_cursor_execute", commit_a_checkpoint)

    assert arrived == [True]
    assert "has no checkpoint yet" in str(refused.value)
