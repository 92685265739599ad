"""A running job whose key reaches SERVICE_MAX_STORAGE_BYTES_PER_KEY stops keeping periodic
checkpoints, and keeps training and keeping its best and final ones."""

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service import repository_checkpoints
from service.db import transaction
from service.settings import Settings
from service.training.hooks import Snapshot
from tests.jobs import claimed_hooks, queue


def snapshot(epoch: int, *kinds: str) -> Snapshot:
    return Snapshot(
        epoch=epoch,
        kinds=frozenset(kinds),  # type: ignore[arg-type]
        metric=None,
        weights=b"w" * 600,
        state=b"s" * 400,
    )


def stored_epochs(sessions: sessionmaker[Session], job_id: str) -> list[int]:
    with transaction(sessions) as session:
        return [
            row.epoch for row in repository_checkpoints.list_checkpoints(session, job_id=job_id)
        ]


@pytest.mark.parametrize("settings_overrides", [{"max_storage_bytes_per_key": 2500}])
def test_periodic_checkpoints_past_the_limit_are_not_kept_best_and_final_are(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    (job_id,) = queue(sessions, settings)
    hooks = claimed_hooks(sessions, settings, token="w1")

    hooks.on_checkpoint(snapshot(1, "periodic"))
    hooks.on_checkpoint(snapshot(2, "periodic"))
    hooks.on_checkpoint(snapshot(3, "periodic"))  # 3,000 bytes: past the 2,500 allowed
    hooks.on_checkpoint(snapshot(4, "periodic", "best"))
    hooks.on_checkpoint(snapshot(5, "final"))
    hooks.flush()

    assert stored_epochs(sessions, job_id) == [1, 2, 4, 5]
