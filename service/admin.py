"""Admin commands that work on the database itself: `service keys list | revoke`,
`service delete --key-name`. Each prints for a person and returns the exit status."""

import sys
from collections.abc import Callable
from typing import TextIO, TypeVar

from sqlalchemy.orm import Session

from service import keys, repository_keys, storage
from service.db import make_engine, make_session_factory, transaction
from service.errors import ServiceError
from service.settings import Settings
from service.sweeps import control as sweeps_control
from service.sweeps import repository as sweeps_repository

T = TypeVar("T")


def _in_transaction(settings: Settings, work: Callable[[Session], T]) -> T:
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    storage.reclaim_after_commits(sessions)
    try:
        with transaction(sessions, immediate=True) as session:
            return work(session)
    finally:
        engine.dispose()


def _run(
    settings: Settings,
    work: Callable[[Session], T],
    *,
    report: Callable[[T], str],
    out: TextIO,
    err: TextIO,
) -> int:
    """Do `work` in a transaction and write its report: 0; or write its ServiceError: 3."""
    try:
        result = _in_transaction(settings, work)
    except ServiceError as error:
        err.write(f"error: {error.message}\n")
        return 3
    out.write(report(result) + "\n")
    return 0


def _when(moment: object) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def list_keys(settings: Settings, *, out: TextIO = sys.stdout) -> int:
    rows = _in_transaction(settings, keys.list_keys)
    out.write(f"{'NAME':<24} {'CREATED':<19}  {'LAST USED':<19}  REVOKED\n")
    for row in rows:
        out.write(
            f"{row.name:<24} {_when(row.created_at):<19}  {_when(row.last_used_at):<19}  "
            f"{_when(row.revoked_at)}\n"
        )
    return 0


def revoke_key(
    settings: Settings, *, name: str, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    return _run(
        settings,
        lambda session: keys.revoke(session, name=name),
        report=lambda revoked: (
            f"revoked {revoked} key(s) named {name!r}: refused within "
            f"{settings.key_cache_seconds:g} s (SERVICE_KEY_CACHE_SECONDS); their jobs stay"
        ),
        out=out,
        err=err,
    )


def delete_key_resources(
    settings: Settings, *, name: str, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    def delete(session: Session) -> tuple[int, int, int]:
        rows = repository_keys.api_keys_named(session, name=name)
        if not rows:
            raise ServiceError(f"no API key is named {name!r}; `service keys list` lists them")
        jobs = sweeps = datasets = 0
        for row in rows:
            # Sweeps first, as DELETE /v1/sweeps/{id} does: cancelled, so none creates a trial.
            for sweep_id in sweeps_repository.sweep_ids_of(session, owner_id=row.id):
                jobs += len(sweeps_control.delete(session, sweep_id=sweep_id, owner_id=row.id))
                sweeps += 1
            deleted = storage.delete_everything_of(session, owner_id=row.id)
            jobs, datasets = jobs + deleted[0], datasets + deleted[1]
        return jobs, sweeps, datasets

    return _run(
        settings,
        delete,
        report=lambda deleted: (
            f"deleted {deleted[0]} job(s), {deleted[1]} sweep(s) and {deleted[2]} dataset(s) "
            f"of the key(s) named {name!r}"
        ),
        out=out,
        err=err,
    )
