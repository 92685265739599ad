"""Request batching: concurrent callers share forward passes and each gets exactly its rows."""

import asyncio
import threading
import time

import numpy as np
import pytest
import torch

from service.errors import InvalidInput
from service.inference.batching import Batcher
from service.inference.loading import LoadedNetwork, Outputs
from tests.unit.inference.networks import loaded_network


def rows(n: int, *, count: int) -> np.ndarray:
    """Caller n's own rows: distinct for every caller and row."""
    return np.array([[n, -n / 3 + r, r / 7] for r in range(count)], dtype=np.float32)


async def predict_all(
    batcher: Batcher, loaded: LoadedNetwork, inputs: list[np.ndarray]
) -> list[Outputs]:
    return list(await asyncio.gather(*(batcher.submit(loaded, x) for x in inputs)))


async def predict_all_or_errors(
    batcher: Batcher, loaded: LoadedNetwork, inputs: list[np.ndarray]
) -> list[Outputs | BaseException]:
    calls = (batcher.submit(loaded, x) for x in inputs)
    return list(await asyncio.gather(*calls, return_exceptions=True))


def test_concurrent_callers_share_one_pass_and_get_their_own_rows() -> None:
    loaded = loaded_network()
    batcher = Batcher(max_rows=1024, max_wait_seconds=0)
    inputs = [rows(n, count=n % 3 + 1) for n in range(20)]

    answers = asyncio.run(predict_all(batcher, loaded, inputs))

    assert (batcher.requests, batcher.passes) == (20, 1)
    for x, answer in zip(inputs, answers, strict=True):
        alone = loaded.infer(x)
        torch.testing.assert_close(
            torch.from_numpy(answer.probabilities), torch.from_numpy(alone.probabilities)
        )
        assert answer.predictions.tolist() == alone.predictions.tolist()
    assert len({a.probabilities.tobytes() for a in answers}) == 20


def test_a_pass_takes_whole_requests_up_to_max_rows() -> None:
    loaded = loaded_network()
    batcher = Batcher(max_rows=5, max_wait_seconds=0)
    # 2 + 2 rows fit in 5, a third request does not; 7 rows run alone.
    inputs = [rows(0, count=2), rows(1, count=2), rows(2, count=2), rows(3, count=7)]

    answers = asyncio.run(predict_all(batcher, loaded, inputs))

    assert (batcher.requests, batcher.passes) == (4, 3)
    assert [len(a.predictions) for a in answers] == [2, 2, 2, 7]


def test_a_wait_gathers_requests_that_arrive_later() -> None:
    loaded = loaded_network()
    batcher = Batcher(max_rows=1024, max_wait_seconds=0.05)

    async def staggered() -> None:
        first = asyncio.create_task(batcher.submit(loaded, rows(0, count=1)))
        await asyncio.sleep(0)
        second = asyncio.create_task(batcher.submit(loaded, rows(1, count=1)))
        await asyncio.gather(first, second)

    asyncio.run(staggered())

    assert (batcher.requests, batcher.passes) == (2, 1)


def test_a_failed_pass_fails_each_of_its_callers() -> None:
    loaded = loaded_network()
    batcher = Batcher(max_rows=1024, max_wait_seconds=0)

    async def wrong_width() -> list[object]:
        calls = [batcher.submit(loaded, np.zeros((1, 5), np.float32)) for _ in range(3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(wrong_width())

    assert all(isinstance(r, RuntimeError) for r in results)
    # The next request is served as usual.
    answer = asyncio.run(batcher.submit(loaded, rows(0, count=1)))
    assert answer.predictions.shape == (1,)


def test_a_request_with_a_nan_fails_alone_and_its_error_names_its_own_row() -> None:
    loaded = loaded_network()
    batcher = Batcher(max_rows=1024, max_wait_seconds=0)
    bad = rows(1, count=3)
    bad[2, 1] = np.nan
    inputs = [rows(0, count=2), bad, rows(2, count=1)]

    results = asyncio.run(predict_all_or_errors(batcher, loaded, inputs))

    assert isinstance(results[1], InvalidInput)
    assert "row 2 holds nan at index [1]" in str(results[1])
    for x, answer in zip((inputs[0], inputs[2]), (results[0], results[2]), strict=True):
        assert isinstance(answer, Outputs)
        np.testing.assert_array_equal(answer.probabilities, loaded.infer(x).probabilities)
    # One merged pass that failed, then each request alone.
    assert (batcher.requests, batcher.passes) == (3, 4)


def test_stopping_while_a_failed_pass_runs_again_releases_every_caller() -> None:
    """The server stops (the drain task is cancelled) while the requests of a failed merged
    pass are run again one by one: no caller is left waiting for an answer."""
    network = loaded_network()
    alone = threading.Event()

    class FailsMerged:
        key = network.key

        def infer(self, inputs: np.ndarray) -> Outputs:
            if len(inputs) > 1:
                raise ValueError("a merged pass fails")
            alone.set()
            time.sleep(0.2)
            return network.infer(inputs)

    batcher = Batcher(max_rows=1024, max_wait_seconds=0)

    async def stop_midway() -> list[object]:
        fails_merged = FailsMerged()
        calls = [
            asyncio.create_task(batcher.submit(fails_merged, rows(n, count=1))) for n in range(3)
        ]
        await asyncio.to_thread(alone.wait, 5)
        for drain in list(batcher._drains):
            drain.cancel()
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)

    results = asyncio.run(stop_midway())

    assert all(isinstance(r, asyncio.CancelledError) for r in results)


def test_networks_are_batched_separately() -> None:
    first, second = (
        loaded_network(key=("a", 1, "x"), seed=1),
        loaded_network(key=("b", 1, "y"), seed=2),
    )
    batcher = Batcher(max_rows=1024, max_wait_seconds=0)
    x = rows(5, count=2)

    async def both() -> list[Outputs]:
        return list(await asyncio.gather(batcher.submit(first, x), batcher.submit(second, x)))

    one, two = asyncio.run(both())

    assert batcher.passes == 2
    np.testing.assert_array_equal(one.probabilities, first.infer(x).probabilities)
    np.testing.assert_array_equal(two.probabilities, second.infer(x).probabilities)
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(one.probabilities, two.probabilities)
