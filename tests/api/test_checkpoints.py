"""GET /v1/jobs/{id}/checkpoints and /checkpoints/{ref}: list, and download as safetensors."""

import hashlib
from pathlib import Path

import httpx
import torch
from safetensors.torch import load_file
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.specs import JobSpec
from service.training.networks import build_network
from tests.conftest import create_api_key
from tests.factories import tiny_spec
from tests.predictions import POINTS, predict, train, train_eval_mode_job


def test_listing_names_each_kind_of_each_epoch(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, checkpoint_every=1)

    listed = client.get(f"/v1/jobs/{job['id']}/checkpoints").json()

    assert [(entry["epoch"], entry["kind"]) for entry in listed] == [
        (1, "periodic"),
        (2, "periodic"),
        (3, "best"),
        (3, "final"),
    ]
    assert all(entry["bytes"] == 344 and len(entry["sha256"]) == 64 for entry in listed)


def test_downloaded_checkpoint_loads_offline_and_predicts_as_the_api_does(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    job = train_eval_mode_job(client, sessions, settings)

    response = client.get(f"/v1/jobs/{job['id']}/checkpoints/best")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-checkpoint-sha256"] == hashlib.sha256(response.content).hexdigest()
    # Every epoch is checkpointed (3 epochs: checkpoint_every 1), so the best checkpoint is the
    # job's best epoch.
    epoch = job["best"]["epoch"]
    assert response.headers["x-checkpoint-epoch"] == str(epoch)
    filename = f"{job['id']}-epoch-{epoch}.safetensors"
    assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    path = tmp_path / filename
    path.write_bytes(response.content)

    # Offline, as a user would: the spec from GET /v1/jobs/{id}, the weights from the file.
    network = build_network(
        JobSpec.model_validate(job["spec"]).model.layers, device=torch.device("cpu")
    )
    network.load_state_dict(load_file(path), strict=True)
    network.eval()
    with torch.no_grad():
        offline = torch.softmax(network(torch.tensor(POINTS)), dim=1)

    answer = predict(client, job, inputs=POINTS)
    torch.testing.assert_close(torch.tensor(answer["probabilities"]), offline)
    assert answer["predictions"] == offline.argmax(dim=1).tolist()


def test_refs_name_the_epoch_they_resolve_to(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, checkpoint_every=1)
    entries = client.get(f"/v1/jobs/{job['id']}/checkpoints").json()
    sha256 = {entry["epoch"]: entry["sha256"] for entry in entries}

    for ref, epoch in (("final", 3), ("latest", 3), ("best", 3), ("1", 1), ("2", 2)):
        response = client.get(f"/v1/jobs/{job['id']}/checkpoints/{ref}")
        assert response.status_code == 200, ref
        assert response.headers["x-checkpoint-epoch"] == str(epoch)
        assert response.headers["x-checkpoint-sha256"] == sha256[epoch]


def test_unknown_ref_job_or_owner_is_404_bad_ref_422_no_checkpoint_409(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings, server: str
) -> None:
    job = train(client, sessions, settings)
    queued = client.post("/v1/jobs", json=tiny_spec()).json()
    other = {"Authorization": f"Bearer {create_api_key(sessions, name='other')}"}

    assert client.get(f"/v1/jobs/{job['id']}/checkpoints/9").status_code == 404
    assert client.get("/v1/jobs/nope/checkpoints").status_code == 404
    assert client.get("/v1/jobs/nope/checkpoints/best").status_code == 404
    assert httpx.get(f"{server}/v1/jobs/{job['id']}/checkpoints", headers=other).status_code == 404
    assert (
        httpx.get(f"{server}/v1/jobs/{job['id']}/checkpoints/best", headers=other).status_code
        == 404
    )
    bad = client.get(f"/v1/jobs/{job['id']}/checkpoints/newest")
    assert bad.status_code == 422
    assert bad.json()["detail"] == (
        "checkpoint 'newest' is not a checkpoint; use best, final, latest or an epoch number"
    )
    assert client.get(f"/v1/jobs/{queued['id']}/checkpoints").json() == []
    assert client.get(f"/v1/jobs/{queued['id']}/checkpoints/latest").status_code == 409


def test_openapi_documents_the_download(server: str) -> None:
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    operation = paths["/v1/jobs/{job_id}/checkpoints/{ref}"]["get"]
    assert "application/octet-stream" in operation["responses"]["200"]["content"]
    assert {"404", "409", "422"} <= set(operation["responses"])
