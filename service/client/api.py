"""The HTTP API as the client calls it: one httpx client, errors as one exception type."""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

# Waiting longer than the server's keep-alive comments (15 s) means the connection is gone.
STREAM_READ_TIMEOUT = 60.0


class ClientError(Exception):
    """The server refused a request, or could not be reached; the message says which and why."""


class NotFound(ClientError):
    """The server has no such resource (404), or it is another key's."""


class Unavailable(ClientError):
    """The server's database is unavailable for now (503): the same request may succeed after
    `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Api:
    def __init__(self, *, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30.0
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ClientError(f"cannot reach {self.url}: {error}") from error
        check(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    @contextmanager
    def stream(self, path: str, *, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """A streamed GET; transport errors are left to the caller, which may reconnect."""
        timeout = httpx.Timeout(30.0, read=STREAM_READ_TIMEOUT)
        with self.http.stream("GET", path, headers=headers, timeout=timeout) as response:
            if response.is_error:
                response.read()
                check(response)
            yield response


def check(response: httpx.Response) -> None:
    """ClientError with the server's own words for any error status."""
    if not response.is_error:
        return
    try:
        body = response.json()
        reason = f"{body['error']}: {body['detail']}"
    except (ValueError, KeyError, TypeError):
        reason = response.text[:500] or response.reason_phrase
    message = (
        f"{response.request.method} {response.request.url.path} -> {response.status_code} {reason}"
    )
    retry_after = response.headers.get("retry-after", "")
    if response.status_code == 503 and retry_after.isdigit():
        raise Unavailable(message, retry_after=float(retry_after))
    if response.status_code == 404:
        raise NotFound(message)
    raise ClientError(message)


def read_json(source: str) -> Any:
    """A spec given on the command line: a file's JSON, or stdin's for "-"."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ClientError(f"{source} is not JSON: {error}") from error
