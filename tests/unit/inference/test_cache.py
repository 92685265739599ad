"""The LRU of loaded networks: eviction order, one load per key, retrained epochs replaced."""

import threading

from service.inference.cache import LRU, NetworkCache
from service.inference.loading import LoadedNetwork
from tests.unit.inference.networks import loaded_network


def test_lru_evicts_the_least_recently_used() -> None:
    lru: LRU[str, int] = LRU(capacity=2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recent
    lru.put("c", 3)

    assert lru.keys() == ["a", "c"]
    assert lru.get("b") is None


def test_concurrent_misses_for_one_key_load_once() -> None:
    cache = NetworkCache(capacity=4)
    key = ("job", 3, "sha")
    loads: list[int] = []
    inside = threading.Event()
    release = threading.Event()

    def load() -> LoadedNetwork:
        loads.append(1)
        inside.set()
        release.wait(timeout=30)
        return loaded_network(key=key)

    results: list[LoadedNetwork] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_load(key, load)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    inside.wait(timeout=30)
    assert cache.get(key) is None  # not visible until fully built
    release.set()
    for thread in threads:
        thread.join(timeout=30)

    assert len(loads) == 1
    assert len(results) == 8
    assert all(result is results[0] for result in results)


def test_a_retrained_epoch_replaces_the_old_weights_and_other_epochs_stay() -> None:
    cache = NetworkCache(capacity=4)
    old, new, other = ("job", 5, "old"), ("job", 5, "new"), ("job", 4, "x")
    cache.get_or_load(old, lambda: loaded_network(key=old))
    cache.get_or_load(other, lambda: loaded_network(key=other))

    cache.get_or_load(new, lambda: loaded_network(key=new))

    assert cache.entries.keys() == [other, new]


def test_capacity_bounds_the_networks_kept() -> None:
    cache = NetworkCache(capacity=2)
    for epoch in range(1, 5):
        key = ("job", epoch, "sha")
        cache.get_or_load(key, lambda key=key: loaded_network(key=key))  # type: ignore[misc]

    assert cache.entries.keys() == [("job", 3, "sha"), ("job", 4, "sha")]
