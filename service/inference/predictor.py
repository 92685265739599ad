"""The api's inference: resolve a checkpoint, load (or reuse) its network, predict.

One Predictor per api process. Three caches keep the common request free of database reads
and loads: the API key (deps), the resolution of a settled job's checkpoint reference (a job
in a final state never gets another checkpoint), and the loaded networks (LRU by job, epoch
and sha256). A running job's reference is resolved again on every request with one metadata
query, so `latest` follows its training.

The predict path opens its own short read transaction, inside the worker thread that needs it,
rather than taking the request's session: a pooled connection held across the awaits of a busy
async route (batching, thread hand-offs) starves the pool, and the threads waiting for a
connection then starve the requests that hold one.
"""

import time
from collections.abc import Callable

import anyio.to_thread
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.errors import NotFound
from service.inference import decoding, loading, pictures, responses
from service.inference.batching import Batcher
from service.inference.cache import LRU, NetworkCache
from service.inference.loading import LoadedNetwork, Outputs
from service.inference.lookup import CheckpointRef, Target, resolve_checkpoint
from service.settings import Settings
from service.training.devices import pick_device

# Resolutions of settled jobs' references kept; each is a few hundred bytes.
SETTLED_TARGETS = 4096
# Bodies larger than this are parsed in a worker thread, so one big request does not stall
# the event loop; smaller ones are parsed in place, which is cheaper than the thread hop.
PARSE_IN_THREAD_BYTES = 256 * 1024


class Predictor:
    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.device = pick_device(settings.device)
        self.max_rows = settings.max_predict_rows
        self.networks = NetworkCache(capacity=settings.predict_cache_size)
        # Each with the monotonic time until which it is trusted: a job deleted through another
        # api process stops answering here within SERVICE_KEY_CACHE_SECONDS.
        self.settled: LRU[tuple[str, CheckpointRef | None], tuple[float, Target]] = LRU(
            capacity=SETTLED_TARGETS
        )
        self.settled_seconds = settings.key_cache_seconds
        self.batcher = (
            Batcher(
                max_rows=settings.predict_batch_rows,
                max_wait_seconds=settings.predict_batch_wait_ms / 1000,
            )
            if settings.predict_batching
            else None
        )
        # Told the rows of every unbatched forward pass (the Batcher has its own).
        self.on_pass: Callable[[int], None] | None = None

    # --- blocking steps, each run in a worker thread by the async path ---

    def resolve(
        self, session: Session, *, job_id: str, owner_id: str, ref: CheckpointRef | None
    ) -> Target:
        target, _ = resolve_checkpoint(
            session, job_id=job_id, owner_id=owner_id, ref=ref, with_blobs=False
        )
        if target.settled:
            self.settled.put((job_id, ref), (time.monotonic() + self.settled_seconds, target))
        return target

    def forget(self, job_id: str) -> None:
        """Drop what this process keeps of a deleted job: its resolutions and networks."""
        self.settled.discard(lambda key: key[0] == job_id)
        self.networks.entries.discard(lambda key: key[0] == job_id)

    def load(self, session: Session, *, target: Target) -> LoadedNetwork:
        return self.networks.get_or_load(
            target.key, lambda: loading.load(session, target=target, device=self.device)
        )

    def open(
        self, session: Session, *, job_id: str, owner_id: str, ref: CheckpointRef | None
    ) -> tuple[Target, LoadedNetwork]:
        """The checkpoint's target and network, for callers that are already in a thread."""
        target = self._settled(job_id=job_id, owner_id=owner_id, ref=ref)
        if target is None:
            target = self.resolve(session, job_id=job_id, owner_id=owner_id, ref=ref)
        return target, self.load(session, target=target)

    # --- the request path ---

    def _settled(self, *, job_id: str, owner_id: str, ref: CheckpointRef | None) -> Target | None:
        entry = self.settled.get((job_id, ref))
        if entry is None or entry[0] < time.monotonic():
            return None
        target = entry[1]
        if target.owner_id != owner_id:
            raise NotFound(f"job {job_id!r} does not exist")
        return target

    async def predict(
        self,
        *,
        job_id: str,
        owner_id: str,
        body: bytes,
        content_type: str | None,
        checkpoint: str | None,
        top_k: str | None,
    ) -> bytes:
        """The response body for a predict request's body (JSON or .npy) and query."""

        def decode() -> decoding.PredictRequest:
            return decoding.decode(
                body, content_type=content_type, checkpoint=checkpoint, top_k=top_k
            )

        if len(body) > PARSE_IN_THREAD_BYTES:
            request = await anyio.to_thread.run_sync(decode)
        else:
            request = decode()
        ref = request.checkpoint
        settled = self._settled(job_id=job_id, owner_id=owner_id, ref=ref)
        cached = None if settled is None else self.networks.get(settled.key)
        if settled is not None and cached is not None:
            target, loaded = settled, cached
        else:

            def resolve_and_load() -> tuple[Target, LoadedNetwork]:
                with transaction(self.sessions) as session:
                    found = settled or self.resolve(
                        session, job_id=job_id, owner_id=owner_id, ref=ref
                    )
                    return found, self.load(session, target=found)

            target, loaded = await anyio.to_thread.run_sync(resolve_and_load)
        sent = request.inputs
        if request.pictures is not None:
            sent = await anyio.to_thread.run_sync(self._decode_pictures, loaded, request.pictures)
        assert sent is not None  # a request holds inputs or pictures
        inputs = decoding.check_inputs(sent, input_shape=loaded.input_shape, max_rows=self.max_rows)
        outputs = await self._run(loaded, inputs)
        return responses.encode(
            outputs, target=target, top_k=request.top_k, class_names=loaded.class_names
        )

    def _decode_pictures(self, loaded: LoadedNetwork, sent: pictures.Pictures) -> np.ndarray:
        return pictures.to_inputs(
            sent, input_shape=loaded.input_shape, images=loaded.images, max_rows=self.max_rows
        )

    async def _run(self, loaded: LoadedNetwork, inputs: np.ndarray) -> Outputs:
        if self.batcher is not None:
            return await self.batcher.submit(loaded, inputs)
        if self.on_pass is not None:
            self.on_pass(len(inputs))
        return await anyio.to_thread.run_sync(loaded.infer, inputs)
