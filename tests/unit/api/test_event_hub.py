"""The api's shared event poller: however many streams watch however many jobs, one tick reads
the jobs' rows in one query and their new epochs in one more, and each stream hears only of
its own job's changes."""

import asyncio
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from service.api.event_hub import EventHub
from service.settings import Settings
from service.training.hooks import EpochResult
from service.worker.hooks import DatabaseHooks
from tests.jobs import claimed_hooks, queue


def running_jobs(
    sessions: sessionmaker[Session], settings: Settings, count: int
) -> list[DatabaseHooks]:
    """Queue `count` tiny jobs and claim each as a worker does; write epochs with the hooks."""
    queue(sessions, settings, count, epochs=10)
    return [
        claimed_hooks(sessions, settings, token=f"test-worker:{number}") for number in range(count)
    ]


def write_epochs(writer: DatabaseHooks, epochs: range) -> None:
    for epoch in epochs:
        writer.on_epoch(
            EpochResult(
                epoch=epoch,
                loss=1 / epoch,
                accuracy=0.5,
                val_loss=None,
                val_accuracy=None,
                lr=0.01,
                seconds=0.25,
            )
        )
    writer.flush()


class SelectCounter:
    def __init__(self, engine: Engine) -> None:
        self.selects = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, _connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.selects += 1


def test_one_tick_reads_all_watched_jobs_in_two_queries_and_fans_out(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings
) -> None:
    writers = running_jobs(sessions, settings, count=12)
    job_ids = [writer.job_id for writer in writers]
    counter = SelectCounter(engine)

    async def scenario() -> None:
        hub = EventHub(sessions=sessions, poll_seconds=3600)
        subscriptions = [hub.subscribe(job_id) for job_id in job_ids for _ in range(3)]
        await hub.close()  # the test drives the ticks itself

        before = counter.selects
        await hub.tick()
        assert counter.selects - before == 1, "a first tick only learns where each job is"
        for subscription in subscriptions:
            subscription.updates.get_nowait()

        for index, writer in enumerate(writers):
            write_epochs(writer, range(1, 2 + index % 3))
        before = counter.selects
        await hub.tick()
        assert counter.selects - before == 2, "jobs' rows, then all their new epochs"
        for subscription in subscriptions:
            update = subscription.updates.get_nowait()
            assert update.job is not None
            assert update.job.id == subscription.job_id
            index = job_ids.index(subscription.job_id)
            assert [epoch.epoch for epoch in update.epochs] == list(range(1, 2 + index % 3))
            assert subscription.updates.empty()

        write_epochs(writers[0], range(2, 3))
        await hub.tick()
        for subscription in subscriptions:
            if subscription.job_id == job_ids[0]:
                [epoch] = subscription.updates.get_nowait().epochs
                assert epoch.epoch == 2
            assert subscription.updates.empty(), "nothing changed for the other jobs"

        for subscription in subscriptions:
            hub.unsubscribe(subscription)
        assert hub.subscriptions == {}
        assert hub.cursors == {}

    asyncio.run(scenario())


def test_a_slow_stream_drops_waiting_updates_but_keeps_the_latest_state(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    [writer] = running_jobs(sessions, settings, count=1)

    async def scenario() -> None:
        hub = EventHub(sessions=sessions, poll_seconds=3600)
        subscription = hub.subscribe(writer.job_id)
        await hub.close()
        await hub.tick()
        for epoch in range(1, 100):
            write_epochs(writer, range(epoch, epoch + 1))
            await hub.tick()
        waiting = []
        while not subscription.updates.empty():
            waiting.append(subscription.updates.get_nowait())
        assert 0 < len(waiting) < 100
        assert waiting[-1].job is not None
        assert waiting[-1].job.epoch == 99, "the stream will read the epochs it lost"

    asyncio.run(scenario())
