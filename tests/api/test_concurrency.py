"""Many requests at once: every one answered, none stuck waiting for a database connection.

Before sessions were admitted through a semaphore, about 60 concurrent requests deadlocked the
pool (sessions that had finished their route held connections while waiting for a thread to
commit on, and every thread waited for a connection): 500s after the 30 s pool timeout.
"""

import asyncio

import httpx
import pytest

from tests.factories import tiny_spec

READS = 150
WRITES = 30


@pytest.mark.parametrize("settings_overrides", [{"key_cache_seconds": 0, "api_threads": 20}])
def test_hundreds_of_concurrent_requests_are_all_answered(server: str, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    job = httpx.post(f"{server}/v1/jobs", json=tiny_spec(), headers=headers).json()

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=READS + WRITES)
        async with httpx.AsyncClient(
            base_url=server, headers=headers, timeout=60, limits=limits
        ) as http:
            reads = [http.get(f"/v1/jobs/{job['id']}") for _ in range(READS)]
            writes = [http.post("/v1/jobs", json=tiny_spec(name=f"w{i}")) for i in range(WRITES)]
            return await asyncio.gather(*reads, *writes)

    responses = asyncio.run(burst())

    assert [r.status_code for r in responses[:READS]] == [200] * READS
    assert [r.status_code for r in responses[READS:]] == [202] * WRITES
    listed = httpx.get(f"{server}/v1/jobs", params={"limit": 100}, headers=headers).json()["jobs"]
    assert len(listed) == WRITES + 1
