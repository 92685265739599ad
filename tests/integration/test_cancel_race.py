"""A cancel that races a worker's claim is not lost.

On PostgreSQL (READ COMMITTED) a worker can claim the job between the cancel's read of it and its
conditional UPDATE; the UPDATE then matches nothing. The hook claims the job right after the
cancel's first read of the jobs table, every time.
"""

from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from service import jobs
from service.db import transaction
from service.settings import Settings
from tests.jobs import claim, queue, read


def test_a_cancel_racing_a_claim_asks_the_running_job_to_stop(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite runs the cancel in BEGIN IMMEDIATE: no claim can commit inside it")
    [job_id] = queue(sessions, settings)
    owner_id = read(sessions, job_id).owner_id
    claimed: list[object] = []

    def claim_it(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if claimed or not statement.lstrip().startswith("SELECT") or "FROM jobs" not in statement:
            return
        claimed.append("claiming")  # the claim's own SELECTs must not fire this again
        claimed[0] = claim(sessions, settings, token="racer")

    event.listen(engine, "after_cursor_execute", claim_it)
    try:
        with transaction(sessions) as session:
            answered = jobs.cancel(session, job_id=job_id, owner_id=owner_id)
            answer = (answered.status, answered.cancel_requested)
    finally:
        event.remove(engine, "after_cursor_execute", claim_it)

    job = read(sessions, job_id)
    assert claimed[0] is not None
    assert (job.status, job.lease_owner, job.cancel_requested) == ("running", "racer", True)
    assert answer == ("running", True)
