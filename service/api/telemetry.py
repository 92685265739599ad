"""Prometheus metrics of one api process, for GET /metrics.

Two kinds: what the database says at scrape time (jobs by status, the queue, training
throughput), read in one short transaction per scrape, so every api replica reports the same
fleet-wide numbers; and what this process saw (prediction latency and batch sizes, network
cache hits, plots drawn, open event streams). Each app has its own registry, so several apps in
one process (as in tests) do not share counts.

With several api processes on one port (SERVICE_API_PROCESSES), a scrape reaches one of them at
random, so the second kind must be every process's sum: prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by `service up` and `service api` for their api processes) keeps
each process's metrics in files of its own, and a scrape of any process reads them all. The
counts the ProcessCollector reads from the predictor, plotter and hub are copied into such
metrics every PUBLISH_SECONDS (and by the scraped process at once).
"""

import asyncio
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from service import repository_monitoring
from service.api.event_hub import EventHub
from service.db import transaction
from service.inference.predictor import Predictor
from service.plots.plotter import Plotter
from service.statuses import JobStatus

log = logging.getLogger(__name__)

# Throughput of a running job is measured over its last this many epochs.
RATE_EPOCHS = 10
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
# With several api processes, the other processes' cache, plot and stream counts in a scrape are
# at most this old.
PUBLISH_SECONDS = 1.0


class DatabaseCollector(Collector):
    """Fleet-wide numbers, read from the database at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        try:
            with transaction(self.sessions) as session:
                by_status = repository_monitoring.count_jobs_by_status(session)
                oldest = repository_monitoring.oldest_queued_created_at(session)
                timings = repository_monitoring.running_epoch_timings(session, last=RATE_EPOCHS)
                stored = repository_monitoring.stored_epochs(session)
        except Exception:
            log.exception("metrics: the database could not be read; its numbers are left out")
            return
        jobs = GaugeMetricFamily("service_jobs", "Jobs by status.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status], by_status.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "service_queue_depth",
            "Jobs waiting for a worker.",
            value=by_status.get(JobStatus.QUEUED, 0),
        )
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "service_queue_oldest_age_seconds",
            "How long the oldest queued job has waited; 0 when none waits.",
            value=max(age, 0.0),
        )
        yield GaugeMetricFamily(
            "service_training_epochs_per_second",
            f"Epochs per second over all running jobs, each measured over its last "
            f"{RATE_EPOCHS} epochs' training time.",
            value=sum(count / seconds for count, seconds in timings if seconds > 0),
        )
        yield GaugeMetricFamily(
            "service_epochs_stored",
            "Epochs stored over all jobs; deriv() of it is the fleet's epochs per second of "
            "wall-clock time (it drops when a resumed job trains epochs again).",
            value=stored,
        )


class ProcessCollector(Collector):
    """Counts kept by this process's predictor, plotter and event hub, read at scrape time."""

    def __init__(self, *, predictor: Predictor, plotter: Plotter, events: EventHub) -> None:
        self.predictor = predictor
        self.plotter = plotter
        self.events = events

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "service_network_cache_size",
            "Networks loaded in memory for predictions.",
            value=len(self.predictor.networks.entries.keys()),
        )
        networks = self.predictor.networks
        yield CounterMetricFamily(
            "service_network_cache_hits",
            "Predictions (and plots) that found their network loaded.",
            value=networks.hits,
        )
        yield CounterMetricFamily(
            "service_network_cache_misses",
            "Networks loaded from a checkpoint's weights.",
            value=networks.misses,
        )
        yield CounterMetricFamily(
            "service_plots_drawn", "Plots drawn (cache misses).", value=self.plotter.renders
        )
        yield CounterMetricFamily(
            "service_plot_cache_hits", "Plots served from the cache.", value=self.plotter.hits
        )
        yield GaugeMetricFamily(
            "service_event_streams",
            "Open event streams.",
            value=sum(len(watchers) for watchers in self.events.subscriptions.values()),
        )
        yield GaugeMetricFamily(
            "service_event_jobs_watched",
            "Jobs the event poller reads each tick.",
            value=len(self.events.subscriptions),
        )


class SharedCounts:
    """A collector's numbers copied into metrics kept in the multiprocess files: its counters
    as increments (summed over every process that ever ran, so they survive a restarted one),
    its gauges as this process's value (summed over the processes alive: the supervisor marks
    an exited one dead)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.counters: dict[str, tuple[Counter, float]] = {}
        self.gauges: dict[str, Gauge] = {}
        # A scrape (in a thread) and the periodic publish (on the event loop) may overlap; each
        # increment must be computed from the last one published.
        self.lock = threading.Lock()

    def publish(self) -> None:
        with self.lock:
            self._publish()

    def _publish(self) -> None:
        for family in self.collector.collect():
            # Every family of ProcessCollector is one unlabelled number.
            (sample,) = family.samples
            if family.type == "counter":
                counter, published = self.counters.get(family.name) or (
                    Counter(family.name, family.documentation, registry=None),
                    0.0,
                )
                counter.inc(sample.value - published)
                self.counters[family.name] = (counter, sample.value)
            else:
                if family.name not in self.gauges:
                    self.gauges[family.name] = Gauge(
                        family.name,
                        family.documentation,
                        registry=None,
                        multiprocess_mode="livesum",
                    )
                self.gauges[family.name].set(sample.value)


class Telemetry:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        predictor: Predictor,
        plotter: Plotter,
        events: EventHub,
        multiprocess_dir: Path | None = None,
    ) -> None:
        """`multiprocess_dir`: PROMETHEUS_MULTIPROC_DIR when it is set (see the module's
        docstring); prometheus_client then keeps every metric of this process there."""
        # What a scrape reads. In multiprocess mode the histograms are not registered in it: it
        # reads them, with every other process's, from the files.
        self.registry = CollectorRegistry()
        own = self.registry if multiprocess_dir is None else None
        self.prediction_seconds = Histogram(
            "service_prediction_latency_seconds",
            "Time to answer POST /v1/jobs/{id}/predict, from routing it to its response sent "
            "(or its error raised).",
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.batch_rows = Histogram(
            "service_prediction_batch_rows",
            "Rows per forward pass of the predict path (merged requests count together).",
            buckets=ROW_BUCKETS,
            registry=own,
        )
        predictor.on_pass = self.batch_rows.observe
        if predictor.batcher is not None:
            predictor.batcher.on_pass = self.batch_rows.observe
        self.registry.register(DatabaseCollector(sessions))
        process = ProcessCollector(predictor=predictor, plotter=plotter, events=events)
        self.shared: SharedCounts | None = None
        if multiprocess_dir is None:
            self.registry.register(process)
        else:
            MultiProcessCollector(self.registry, path=str(multiprocess_dir))
            self.shared = SharedCounts(process)

    def exposition(self) -> bytes:
        if self.shared is not None:
            self.shared.publish()
        return generate_latest(self.registry)

    async def publish_forever(self) -> None:
        """In multiprocess mode, publish this process's counts every PUBLISH_SECONDS."""
        while self.shared is not None:
            self.shared.publish()
            await asyncio.sleep(PUBLISH_SECONDS)
