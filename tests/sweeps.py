"""Sweep specs for tests, and running a sweep's trials with in-process workers."""

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.statuses import FINAL_STATUSES
from service.tables import Job
from service.worker.loop import Worker
from tests.factories import tiny_spec

ACTIVATIONS = ["ReLU", "Tanh", "Sigmoid"]


def activation_sweep(**overrides: Any) -> dict[str, Any]:
    """A grid of the tiny job over three activations and two learning rates: 6 trials."""
    spec: dict[str, Any] = {
        "name": "activations",
        "base": tiny_spec(),
        "method": "grid",
        "parameters": {
            "model.layers.1.type": {"values": ACTIVATIONS},
            "optimizer.lr": {"values": [0.01, 0.1]},
        },
        "metric": {"name": "loss"},
        "parallel": 2,
    }
    spec.update(overrides)
    return spec


def run_trials(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Train queued jobs with an in-process worker until none is left; how many it ended
    (a run may train several trials fused)."""
    worker = Worker(settings=settings, sessions=sessions)
    ended = _ended(sessions)
    while worker.run_once():
        pass
    return _ended(sessions) - ended


def _ended(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(Job).where(Job.status.in_(FINAL_STATUSES))
        return session.execute(query).scalar_one()


def submit(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/sweeps", json=spec)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body
