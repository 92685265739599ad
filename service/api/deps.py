"""Request dependencies as Annotated aliases: settings, sessions, the calling API key.

Sessions use scope="function": the transaction commits (or rolls back) when the route returns,
before the response is sent, so a client that got 202 can read what it created at once.
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service import keys
from service.db import transaction
from service.settings import Settings
from service.tables import ApiKey


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


def _read_session(request: Request) -> Iterator[Session]:
    with transaction(_sessions(request)) as session:
        yield session


def _write_session(request: Request) -> Iterator[Session]:
    with transaction(_sessions(request), immediate=True) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]
WriteSession = Annotated[Session, Depends(_write_session, scope="function")]


# A security scheme, so the OpenAPI document (and clients generated from it) knows every /v1
# route needs the key; auto_error=False leaves the wording of the 401 to keys.authenticate.
_bearer = HTTPBearer(
    auto_error=False, description="An API key: `service keys create` or data/api-key"
)


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The key's row: from the key cache, else looked up in a transaction of its own, so no
    request holds a pooled connection while it waits for something else."""
    authorization = f"Bearer {credentials.credentials}" if credentials else None
    cache: keys.KeyCache = request.app.state.key_cache
    row = cache.get(authorization)
    if row is not None:
        return row

    def lookup() -> ApiKey:
        with transaction(_sessions(request)) as session:
            return keys.authenticate(session, authorization=authorization, cache=cache)

    return await run_in_threadpool(lookup)


Caller = Annotated[ApiKey, Depends(_caller)]
