"""Request batching: concurrent predict calls for one checkpoint share one forward pass.

Each loaded network has a queue. The first request to find it idle starts a drain task, which
takes the queued requests (up to `max_rows` rows), runs one forward pass over their rows in a
worker thread, and hands each request exactly its own slice of the outputs. Requests arriving
meanwhile wait for the next pass, so under load passes grow by themselves, and a lone request
runs at once (unless `max_wait` asks the pass to wait for company first).

In eval mode rows do not interact (BatchNorm uses running statistics, Dropout is off), so a
row's outputs do not depend on which rows it shared a pass with, up to float rounding.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread
import numpy as np

from service.inference.loading import LoadedNetwork, Outputs

log = logging.getLogger(__name__)


@dataclass
class _Request:
    inputs: np.ndarray
    answer: asyncio.Future[Outputs]


@dataclass
class _Queue:
    requests: deque[_Request] = field(default_factory=deque)
    rows: int = 0


class Batcher:
    def __init__(self, *, max_rows: int, max_wait_seconds: float) -> None:
        self.max_rows = max_rows
        self.max_wait_seconds = max_wait_seconds
        self._queues: dict[tuple[str, int, str], _Queue] = {}
        self._drains: set[asyncio.Task[None]] = set()
        # Totals since start, for logs and benchmarks: requests served, forward passes run.
        self.requests = 0
        self.passes = 0
        # Told the rows of every forward pass (Prometheus' batch-size histogram).
        self.on_pass: Callable[[int], None] | None = None

    async def submit(self, loaded: LoadedNetwork, inputs: np.ndarray) -> Outputs:
        """The outputs for `inputs` (float32, shape already checked), from a shared pass."""
        answer: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(loaded.key)
        idle = queue is None
        if queue is None:
            queue = self._queues[loaded.key] = _Queue()
        queue.requests.append(_Request(inputs=inputs, answer=answer))
        queue.rows += len(inputs)
        if idle:
            drain = asyncio.create_task(self._drain(loaded, queue))
            # The loop keeps only weak references to tasks.
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await answer

    def _take(self, queue: _Queue) -> list[_Request]:
        """Queued requests up to max_rows rows; always at least one, however large."""
        taken = [queue.requests.popleft()]
        rows = len(taken[0].inputs)
        while queue.requests and rows + len(queue.requests[0].inputs) <= self.max_rows:
            taken.append(queue.requests.popleft())
            rows += len(taken[-1].inputs)
        queue.rows -= rows
        return taken

    async def _drain(self, loaded: LoadedNetwork, queue: _Queue) -> None:
        try:
            while queue.requests:
                if self.max_wait_seconds and queue.rows < self.max_rows:
                    await asyncio.sleep(self.max_wait_seconds)
                taken = self._take(queue)
                self.requests += len(taken)
                await self._run(loaded, taken)
        finally:
            del self._queues[loaded.key]
            # Only if this task was cancelled (the server is stopping): release the waiters.
            for request in queue.requests:
                request.answer.cancel()

    async def _run(self, loaded: LoadedNetwork, requests: list[_Request]) -> None:
        try:
            await self._answer(loaded, requests)
        except BaseException:
            # Cancelled (the server is stopping): release every caller still waiting, those of
            # a pass run again one by one included. A future already answered stays answered.
            for request in requests:
                request.answer.cancel()
            raise

    async def _answer(self, loaded: LoadedNetwork, requests: list[_Request]) -> None:
        """One forward pass over the requests' rows, and each request its own answer."""
        self.passes += 1
        merged = (
            requests[0].inputs
            if len(requests) == 1
            else np.concatenate([request.inputs for request in requests])
        )
        if self.on_pass is not None:
            self.on_pass(len(merged))
        try:
            outputs = await anyio.to_thread.run_sync(loaded.infer, merged)
        except Exception as exc:
            if len(requests) > 1:
                # One request's rows (a NaN, say) must not fail the others, and its error must
                # speak of its own rows: each runs again alone, to its own answer.
                for request in requests:
                    await self._answer(loaded, [request])
            elif not requests[0].answer.done():
                requests[0].answer.set_exception(exc)
            return
        start = 0
        for request in requests:
            stop = start + len(request.inputs)
            # A caller that went away (its task cancelled) has a done future: skip it.
            if not request.answer.done():
                request.answer.set_result(outputs.rows(start, stop))
            start = stop
