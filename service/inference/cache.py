"""A small thread-safe LRU, and the loaded-network cache built on it.

A network is built completely before it is put in the cache, so a reader finds either the old
entry or the finished new one, never a half-loaded network. Concurrent misses for one key load
it once: the others wait for that load instead of reading the blobs again.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from service.inference.loading import LoadedNetwork

K = TypeVar("K")
V = TypeVar("V")

NetworkKey = tuple[str, int, str]  # (job id, epoch, sha256)


class LRU(Generic[K, V]):
    """At most `capacity` entries; a hit makes an entry the most recently used."""

    def __init__(self, *, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def discard(self, match: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [key for key in self._entries if match(key)]:
                del self._entries[key]

    def keys(self) -> list[K]:
        """Least recently used first."""
        with self._lock:
            return list(self._entries)


class _Loading:
    """One key's load in progress: its lock, and how many threads want it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = 0


class NetworkCache:
    """Loaded networks by (job id, epoch, sha256)."""

    def __init__(self, *, capacity: int) -> None:
        self.entries: LRU[NetworkKey, LoadedNetwork] = LRU(capacity=capacity)
        self._loading: dict[NetworkKey, _Loading] = {}
        self._guard = threading.Lock()
        # Lookups that found the network loaded, and loads (for Prometheus).
        self.hits = 0
        self.misses = 0

    def get(self, key: NetworkKey) -> LoadedNetwork | None:
        loaded = self.entries.get(key)
        if loaded is not None:
            with self._guard:
                self.hits += 1
        return loaded

    def get_or_load(self, key: NetworkKey, load: Callable[[], LoadedNetwork]) -> LoadedNetwork:
        """The cached network, or `load()`'s, stored. Blocks: call it from a worker thread."""
        with self._guard:
            loading = self._loading.setdefault(key, _Loading())
            loading.waiting += 1
        try:
            with loading.lock:
                loaded = self.entries.get(key)
                with self._guard:
                    self.hits += loaded is not None
                    self.misses += loaded is None
                if loaded is None:
                    loaded = load()
                    job_id, epoch, sha256 = key
                    # The same epoch retrained after a resume has new weights: the old ones can
                    # never be asked for again.
                    self.entries.discard(lambda k: k[:2] == (job_id, epoch) and k[2] != sha256)
                    self.entries.put(key, loaded)
                return loaded
        finally:
            with self._guard:
                loading.waiting -= 1
                if loading.waiting == 0:
                    del self._loading[key]
