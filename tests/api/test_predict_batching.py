"""Predict under concurrent callers over HTTP, with and without request batching: each caller
gets exactly its own rows."""

import threading
from typing import Any

import httpx
import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from tests.predictions import offline_outputs, train


@pytest.mark.parametrize(
    "settings_overrides",
    [{"predict_batching": True, "predict_batch_wait_ms": 20}, {"predict_batching": False}],
    ids=["batching", "no-batching"],
)
def test_concurrent_callers_each_get_exactly_their_own_rows(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, server: str
) -> None:
    job = train(client, sessions, settings)
    callers = 24
    # Caller n sends n % 3 + 1 rows of its own, so merged passes mix requests of several sizes.
    inputs = [[[n / 10, -n / 7 + row] for row in range(n % 3 + 1)] for n in range(callers)]
    answers: list[dict[str, Any] | None] = [None] * callers
    start = threading.Barrier(callers)

    def call(n: int) -> None:
        with httpx.Client(base_url=server, headers=client.headers, timeout=60) as own:
            start.wait()
            answers[n] = own.post(
                f"/v1/jobs/{job['id']}/predict", json={"inputs": inputs[n]}
            ).json()

    threads = [threading.Thread(target=call, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    for n in range(callers):
        answer = answers[n]
        assert answer is not None
        expected = torch.softmax(offline_outputs(sessions, job, inputs[n]), dim=1)
        torch.testing.assert_close(torch.tensor(answer["probabilities"]), expected)
    distinct = {tuple(map(tuple, a["probabilities"])) for a in answers if a is not None}
    assert len(distinct) == callers
