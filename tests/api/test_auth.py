"""Every /v1 route needs a known key; a job is visible only to the key that made it."""

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service import migrations
from tests.conftest import create_api_key
from tests.factories import tiny_spec


def test_no_key_is_401(server: str) -> None:
    response = httpx.get(f"{server}/v1/jobs")
    assert response.status_code == 401
    assert response.json() == {
        "error": "Unauthorized",
        "detail": "send your API key as 'Authorization: Bearer <key>'",
    }


def test_wrong_key_is_401(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/jobs", json=tiny_spec(), headers={"Authorization": "Bearer sk_wrong"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert "not valid" in response.json()["detail"]


def test_another_keys_job_is_404(
    client: httpx.Client, server: str, sessions: sessionmaker[Session]
) -> None:
    job = client.post("/v1/jobs", json=tiny_spec()).json()
    other = {"Authorization": f"Bearer {create_api_key(sessions, name='other')}"}

    assert httpx.get(f"{server}/v1/jobs/{job['id']}", headers=other).status_code == 404
    assert httpx.post(f"{server}/v1/jobs/{job['id']}/cancel", headers=other).status_code == 404
    assert httpx.get(f"{server}/v1/jobs/{job['id']}/metrics", headers=other).status_code == 404
    assert httpx.get(f"{server}/v1/jobs", headers=other).json()["jobs"] == []
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200


def test_health_needs_no_key(server: str) -> None:
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok", "detail": {}}
    ready = httpx.get(f"{server}/readyz").json()
    assert ready["status"] == "ok"
    assert ready["detail"]["schema"] == migrations.head_revision()
