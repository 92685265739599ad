"""The API-key cache that lets predict skip the key lookup: what it keeps, and for how long."""

import httpx
from sqlalchemy.orm import Session, sessionmaker

from service import keys
from service.db import transaction


def test_a_cached_key_expires_after_its_ttl(sessions: sessionmaker[Session]) -> None:
    now = [100.0]
    cache = keys.KeyCache(ttl=60, clock=lambda: now[0])
    with transaction(sessions, immediate=True) as session:
        row, key = keys.create_key(session, name="cached")
    header = f"Bearer {key}"
    assert cache.get(header) is None

    with transaction(sessions) as session:
        keys.authenticate(session, authorization=header, cache=cache)

    cached = cache.get(header)
    assert cached is not None
    assert cached.id == row.id
    now[0] += 60.5
    assert cache.get(header) is None


def test_only_known_keys_are_kept_and_capacity_bounds_them(sessions: sessionmaker[Session]) -> None:
    cache = keys.KeyCache(ttl=60, capacity=2)
    headers = []
    with transaction(sessions, immediate=True) as session:
        for n in range(3):
            _, key = keys.create_key(session, name=f"k{n}")
            headers.append(f"Bearer {key}")
    with transaction(sessions) as session:
        for header in headers:
            keys.authenticate(session, authorization=header, cache=cache)

    assert [cache.get(h) is not None for h in headers] == [False, True, True]
    assert cache.get("Bearer sk_unknown") is None
    assert cache.get("Basic abc") is None
    assert cache.get(None) is None


def test_a_wrong_key_is_401_while_a_right_one_is_cached(client: httpx.Client, server: str) -> None:
    assert client.get("/v1/jobs").status_code == 200
    assert client.get("/v1/jobs").status_code == 200

    wrong = httpx.get(f"{server}/v1/jobs", headers={"Authorization": "Bearer sk_wrong"})
    missing = httpx.post(f"{server}/v1/jobs/x/predict", json={"inputs": [[1]]})

    assert wrong.status_code == 401
    assert missing.status_code == 401
    assert missing.json()["error"] == "Unauthorized"
