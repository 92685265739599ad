"""samples.png: a classifier's pictures with their labels, and its predictions once trained."""

import io

import httpx
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.worker.loop import Worker
from tests.factories import tiny_spec
from tests.predictions import train
from tests.unit.training.test_pictures import shapes_spec


def test_samples_png_before_and_after_a_checkpoint(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    queued = client.post("/v1/jobs", json=shapes_spec(epochs=2)).json()
    before = client.get(f"/v1/jobs/{queued['id']}/plots/samples.png")
    assert before.status_code == 200, before.text
    assert before.headers["content-type"] == "image/png"

    assert Worker(settings=settings, sessions=sessions).run_once()
    job = client.get(f"/v1/jobs/{queued['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    after = client.get(f"/v1/jobs/{job['id']}/plots/samples.png")
    assert after.status_code == 200
    assert Image.open(io.BytesIO(after.content)).size == (640, 640)
    again = client.get(f"/v1/jobs/{job['id']}/plots/samples.png?checkpoint=final")
    assert (again.status_code, again.headers["x-plot-cache"]) == (200, "hit")


def test_samples_png_of_a_job_without_pictures_is_409(
    client: httpx.Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    job = train(client, sessions, settings, spec=tiny_spec())
    response = client.get(f"/v1/jobs/{job['id']}/plots/samples.png")
    assert response.status_code == 409
    assert "samples.png draws a classifier's pictures" in response.json()["detail"]
