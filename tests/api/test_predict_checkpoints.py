"""Which checkpoint predict answers from: named and numbered ones, the latest of a running job,
and the 404s and 409 when the job, the checkpoint or the owner does not match."""

import threading
import time

import httpx
import torch
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.conftest import create_api_key
from tests.factories import tiny_spec
from tests.predictions import POINTS, offline_outputs, predict, train


def test_named_and_numbered_checkpoints_answer_from_their_own_weights(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, checkpoint_every=1)

    first = predict(client, job, inputs=POINTS, checkpoint=1)
    final = predict(client, job, inputs=POINTS, checkpoint="final")
    latest = predict(client, job, inputs=POINTS, checkpoint="latest")

    assert first["checkpoint"] == {"epoch": 1, "kind": "periodic"}
    assert final["checkpoint"] == {"epoch": 3, "kind": "final"}
    assert latest["checkpoint"] == {"epoch": 3, "kind": "latest"}
    expected_first = torch.softmax(offline_outputs(sessions, job, POINTS, ref=1), dim=1)
    torch.testing.assert_close(torch.tensor(first["probabilities"]), expected_first)
    assert first["probabilities"] != final["probabilities"]
    assert final["probabilities"] == latest["probabilities"]


def test_a_running_job_answers_from_its_latest_checkpoint(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    submitted = client.post("/v1/jobs", json=tiny_spec(epochs=100_000, checkpoint_every=5))
    job = submitted.json()
    worker = Worker(settings=settings, sessions=sessions)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            response = client.post(
                f"/v1/jobs/{job['id']}/predict", json={"inputs": POINTS, "checkpoint": "latest"}
            )
            if response.status_code == 200:
                break
            assert response.status_code == 409, response.text
        answer = response.json()
        final = client.post(
            f"/v1/jobs/{job['id']}/predict", json={"inputs": POINTS, "checkpoint": "final"}
        )
    finally:
        worker.shutdown.set()
        thread.join(timeout=60)

    assert answer["checkpoint"]["kind"] == "latest"
    assert answer["checkpoint"]["epoch"] % 5 == 0
    assert final.status_code == 409
    assert "use latest or best" in final.json()["detail"]


def test_unknown_job_checkpoint_or_owner_is_404_and_no_checkpoint_yet_is_409(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, server: str
) -> None:
    job = train(client, sessions, settings)
    queued = client.post("/v1/jobs", json=tiny_spec()).json()
    other = {"Authorization": f"Bearer {create_api_key(sessions, name='other')}"}
    body = {"inputs": POINTS}

    unknown_job = client.post("/v1/jobs/nope/predict", json=body)
    unknown_epoch = client.post(f"/v1/jobs/{job['id']}/predict", json={**body, "checkpoint": 7})
    not_yours = httpx.post(f"{server}/v1/jobs/{job['id']}/predict", json=body, headers=other)
    no_checkpoint = client.post(f"/v1/jobs/{queued['id']}/predict", json=body)

    assert unknown_job.status_code == 404
    assert unknown_job.json() == {"error": "NotFound", "detail": "job 'nope' does not exist"}
    assert unknown_epoch.status_code == 404
    assert unknown_epoch.json()["detail"].startswith(
        f"job {job['id']} has no epoch 7 checkpoint; it has epochs 1, 2, 3"
    )
    assert not_yours.status_code == 404
    assert no_checkpoint.status_code == 409
    assert no_checkpoint.json()["error"] == "Conflict"
    assert "has no checkpoint yet (status queued" in no_checkpoint.json()["detail"]
    # After the owner's own request cached the resolution, another key still gets 404.
    predict(client, job, inputs=POINTS)
    assert (
        httpx.post(f"{server}/v1/jobs/{job['id']}/predict", json=body, headers=other).status_code
        == 404
    )
