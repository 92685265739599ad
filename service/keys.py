"""API keys: made once, shown once, stored only as a hash."""

import hashlib
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from service import repository
from service.errors import Unauthorized
from service.ids import new_id
from service.tables import ApiKey

log = logging.getLogger(__name__)

KEY_PREFIX = "sk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, name: str) -> tuple[ApiKey, str]:
    """Returns the row and the key itself, which is not stored anywhere."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=new_id(), name=name, key_hash=hash_key(key))
    repository.add_api_key(session, key=row)
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
    row = repository.find_api_key(session, key_hash=key_hash)
    if row is None:
        raise Unauthorized(
            "the API key is not valid; create one with `service keys create --name NAME`"
        )
    if cache is not None:
        cache.put(key_hash, row)
    return row


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

    def put(self, key_hash: str, row: ApiKey) -> None:
        with self._lock:
            self._entries[key_hash] = (self.clock() + self.ttl, row)
            self._entries.move_to_end(key_hash)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def ensure_first_key(session: Session, *, key_file: Path) -> str | None:
    """On a first start with no key at all, make one and write it to `key_file` (mode 0600)."""
    if repository.count_api_keys(session) > 0:
        return None
    _, key = create_key(session, name="default")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    os.chmod(key_file, 0o600)
    log.info("created the first API key and wrote it to %s", key_file)
    return key
