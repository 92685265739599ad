"""API keys: made once, shown once, stored only as a hash; listed by name, revoked by name."""

import hashlib
import logging
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service import repository_keys
from service.db import transaction
from service.errors import NotFound, Unauthorized
from service.ids import new_id
from service.tables import ApiKey

log = logging.getLogger(__name__)

KEY_PREFIX = "sk_"
# A key's last use is written at most this often: a write per lookup would be one per request
# missed by the key cache.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, name: str) -> tuple[ApiKey, str]:
    """Returns the row and the key itself, which is not stored anywhere."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=new_id(), name=name, key_hash=hash_key(key))
    repository_keys.add_api_key(session, key=row)
    return row, key


def bearer_key(authorization: str | None) -> str:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
    return key.strip()


def authenticate(
    session: Session, *, authorization: str | None, cache: "KeyCache | None" = None
) -> ApiKey:
    key_hash = hash_key(bearer_key(authorization))
    row = repository_keys.find_api_key(session, key_hash=key_hash)
    if row is None:
        raise Unauthorized(
            "the API key is not valid; create one with `service keys create --name NAME`"
        )
    if row.revoked_at is not None:
        raise Unauthorized(
            f"the API key {row.name!r} was revoked at {row.revoked_at:%Y-%m-%d %H:%M} UTC; "
            "ask for a new one (`service keys create --name NAME`)"
        )
    if cache is not None:
        cache.put(key_hash, row)
    return row


def mark_used(sessions: sessionmaker[Session], row: ApiKey, *, cache: "KeyCache") -> None:
    """Record that the key was just used, unless that was recorded within LAST_USED_RESOLUTION
    (by any process, or being recorded by this one); in a short write transaction of its own,
    after the lookup's read."""
    now = datetime.now(UTC)
    if row.last_used_at is not None and now - row.last_used_at < LAST_USED_RESOLUTION:
        return
    if not cache.claim_mark(row.id):
        return  # concurrent lookups of one key at its first use: one of them writes
    with transaction(sessions, immediate=True) as session:
        repository_keys.mark_api_key_used(session, key_id=row.id, now=now)


def list_keys(session: Session) -> Sequence[ApiKey]:
    return repository_keys.list_api_keys(session)


def revoke(session: Session, *, name: str) -> int:
    """Revoke every key of that name not revoked yet, and say how many (0: all were already);
    NotFound if none has that name. Each api process refuses it once its cached lookup of the
    key expires, within SERVICE_KEY_CACHE_SECONDS."""
    if not repository_keys.api_keys_named(session, name=name):
        raise NotFound(f"no API key is named {name!r}; `service keys list` lists them")
    return repository_keys.revoke_api_keys(session, name=name, now=datetime.now(UTC))


class KeyCache:
    """Keys that authenticated in the last `ttl` seconds, so a busy client's requests skip the
    database. Only known keys are kept (at most `capacity`), so unknown ones cannot fill it."""

    def __init__(
        self, *, ttl: float, capacity: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._lock = threading.Lock()
        # When this process last recorded each key's use (the clock's time), by key id.
        self._marked: dict[str, float] = {}

    def get(self, authorization: str | None) -> ApiKey | None:
        """The cached row for this header, or None (unknown, expired or malformed)."""
        try:
            key_hash = hash_key(bearer_key(authorization))
        except Unauthorized:
            return None
        with self._lock:
            entry = self._entries.get(key_hash)
            if entry is None or entry[0] < self.clock():
                return None
            return entry[1]

    def claim_mark(self, key_id: str) -> bool:
        """True (and noted) unless this process recorded the key's use within
        LAST_USED_RESOLUTION."""
        now = self.clock()
        with self._lock:
            if now - self._marked.get(key_id, -math.inf) < LAST_USED_RESOLUTION.total_seconds():
                return False
            self._marked[key_id] = now
            return True

    def put(self, key_hash: str, row: ApiKey) -> None:
        with self._lock:
            self._entries[key_hash] = (self.clock() + self.ttl, row)
            self._entries.move_to_end(key_hash)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def ensure_first_key(session: Session, *, key_file: Path) -> str | None:
    """On a first start with no key at all, make one and write it to `key_file` (mode 0600)."""
    if repository_keys.count_api_keys(session) > 0:
        return None
    _, key = create_key(session, name="default")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    os.chmod(key_file, 0o600)
    log.info("created the first API key and wrote it to %s", key_file)
    return key
