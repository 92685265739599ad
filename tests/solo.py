"""A fused job's stored epochs against its solo run: the same epochs, each loss within 1e-3
relative (a batched matrix product sums in another order than a plain one)."""

import torch
from sqlalchemy.orm import Session, sessionmaker

from service import repository
from service.db import transaction
from service.specs import JobSpec
from service.training.loop import train
from tests.jobs import read
from tests.unit.training.runs import CPU, RecordingHooks


def losses(sessions: sessionmaker[Session], job_id: str) -> list[tuple[int, float]]:
    with transaction(sessions) as session:
        return [(m.epoch, m.loss) for m in repository.list_metrics(session, job_id=job_id)]


def solo_losses(sessions: sessionmaker[Session], job_id: str) -> list[tuple[int, float]]:
    """What the job's stored spec gives trained solo, in this process."""
    hooks = RecordingHooks()
    train(JobSpec.model_validate(read(sessions, job_id).spec), device=CPU, hooks=hooks)
    return [(m.epoch, m.loss) for m in hooks.epochs]


def assert_like_solo(sessions: sessionmaker[Session], job_id: str) -> None:
    stored, solo = losses(sessions, job_id), solo_losses(sessions, job_id)
    assert [e for e, _ in stored] == [e for e, _ in solo]
    torch.testing.assert_close([v for _, v in stored], [v for _, v in solo], rtol=1e-3, atol=0)
