"""A job's event stream as the client follows it: parsed, and resumed after a dropped
connection from the last epoch received (Last-Event-ID), so no epoch is lost or repeated."""

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from service.client.api import Api, ClientError, Unavailable
from service.statuses import FINAL_STATUSES

# Reconnects in a row without an event in between before giving up.
RECONNECTS = 5
RECONNECT_PAUSE_SECONDS = 1.0
# How long to keep coming back while the server says its database is unavailable (a restart
# or a failover takes seconds to a minute or two).
UNAVAILABLE_PATIENCE_SECONDS = 600.0


@dataclass(frozen=True)
class ServerEvent:
    event: str
    id: str | None
    data: Any
    retry: int | None = None  # milliseconds, when the event carries a retry field


def parse(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """Server-Sent Events from the stream's lines; comments (keep-alives) are skipped."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                retry = fields.get("retry", "")
                yield ServerEvent(
                    event=fields.get("event", "message"),
                    id=fields.get("id"),
                    data=json.loads("\n".join(data)),
                    retry=int(retry) if retry.isdigit() else None,
                )
            fields, data = {}, []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


def follow(api: Api, job_id: str) -> Iterator[ServerEvent]:
    """Every event of the job until its final status event. While the server's database is
    unavailable (a 503, or the stream's `error` event) it waits as told and reconnects, for up
    to UNAVAILABLE_PATIENCE_SECONDS."""
    last_id: str | None = None
    failures = 0
    unavailable_since: float | None = None
    while True:
        headers = {"Last-Event-ID": last_id} if last_id is not None else {}
        try:
            with api.stream(f"/v1/jobs/{job_id}/events", headers=headers) as response:
                for event in parse(response.iter_lines()):
                    if event.event == "error":
                        raise Unavailable(
                            f"{event.data['error']}: {event.data['detail']}",
                            retry_after=(event.retry or 0) / 1000 or RECONNECT_PAUSE_SECONDS,
                        )
                    failures, unavailable_since = 0, None
                    if event.id is not None:
                        last_id = event.id
                    yield event
                    if event.event == "status" and event.data["status"] in FINAL_STATUSES:
                        return
            reason = "the server closed it before the job finished"
        except Unavailable as error:
            now = time.monotonic()
            unavailable_since = unavailable_since or now
            if now - unavailable_since > UNAVAILABLE_PATIENCE_SECONDS:
                raise ClientError(f"lost the event stream of job {job_id}: {error}") from error
            time.sleep(error.retry_after)
            continue
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
        failures += 1
        if failures > RECONNECTS:
            raise ClientError(f"lost the event stream of job {job_id}: {reason}")
        time.sleep(RECONNECT_PAUSE_SECONDS)
