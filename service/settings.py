"""The one Settings object, read from SERVICE_* variables at an entry point and passed down."""

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVICE_", extra="ignore", frozen=True)

    data_dir: Path = Path("data")
    # Empty means a SQLite file in data_dir; set a postgresql+psycopg:// URL to scale out.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=0)
    # Processes serving the api on one port, each with its own caches and event poller. An api
    # process is one event loop plus one thread of forward passes (SERVICE_PREDICT_THREADS), so
    # it uses about one core: one per core, up to 4, since each costs memory (torch, its network
    # and plot caches) and up to SERVICE_API_THREADS + 10 database connections (PostgreSQL allows
    # 100 by default), and a training host keeps cores for its workers. What 2 give on 2 cores:
    # bench/predict_http.py --api-processes 1,2 (README, Predict).
    api_processes: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 4), ge=1)
    # Requests that may hold a database session at once in the api, and threads it runs blocking
    # work on; its connection pool has 10 more connections than this (see api/deps.py).
    api_threads: int = Field(default=40, ge=1, le=1000)
    # How long an api request waits for a database connection (a free one in the pool, or a
    # new one to PostgreSQL) before it answers 503 DatabaseUnavailable.
    database_timeout_seconds: float = Field(default=5.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads per worker for torch; 0 leaves torch's default (all cores). `service up` gives
    # each of its workers an equal share of the cores instead, so they do not oversubscribe them.
    torch_threads: int = Field(default=0, ge=0)

    # A worker renews its lease with each metrics flush; a job whose lease lapses is requeued.
    lease_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # How long an idle worker waits between polls of the queue. A queued job wakes it at once
    # (service/wakeup.py), so the poll is the fallback for a lost wake-up, and what requeues the
    # job of a worker that died (its lease lapsed); each poll is a write transaction, so idle
    # workers cost nothing measurable only when it is seconds, not fractions.
    poll_seconds: float = Field(default=5.0, gt=0)
    # A worker stores a running job's epochs in one transaction this often (and at once with each
    # checkpoint and when the job ends): readers see an epoch at most this long after it ends. The
    # same write renews the lease and reads a cancel, so it must come well within lease_seconds.
    metrics_flush_seconds: float = Field(default=0.5, gt=0)

    # Fused training (DESIGN.md, "Fused execution"): queued jobs that differ only in what can be
    # vectorised train as one run of at most this many; 1 turns fusion off.
    fuse_max_jobs: int = Field(default=32, ge=1)
    # A fused group's activations (members x samples per step x every layer's outputs, float32)
    # stay under this; more jobs of the kind train as the next group. Unset: the CPU's
    # last-level cache (past it a stacked step is bound by memory and gains nothing per member;
    # bench/fused.py, README), an eighth of a GPU's memory (devices.fuse_activation_budget).
    fuse_max_activation_bytes: int | None = Field(default=None, ge=1)
    # Within those two bounds a worker measures, once per kind of job, which group size trains
    # fastest per member (training/fused/sizing.py; about a second). False: the largest the two
    # bounds allow.
    fuse_measure: bool = True
    # Compile each fused step with torch.compile (training/fused/compiled.py): several times
    # faster per member on the CPU for networks like seed 001's, after a compile of seconds per
    # network in each worker; but compiled kernels round differently, so a member follows its
    # solo run only as closely as its training damps that. Off: every member is its solo run.
    fuse_compile: bool = False
    # Queued jobs a claim looks through for partners of the job it claimed.
    fuse_scan_jobs: int = Field(default=256, ge=1)

    # Limits, each refused with a 4xx that names the setting.
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # POST /v1/datasets only: the uploaded file streams to a temporary file, not into memory.
    max_upload_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    # The arrays an upload may hold uncompressed (a ZIP's or NPZ's members as declared, the
    # decoded pictures as uint8). The api holds about twice this while it stores one; SQLite and
    # PostgreSQL cap a single value at 1 GB (1e9 bytes), which bounds it from above.
    max_dataset_bytes: int = Field(default=900_000_000, ge=1024, le=990_000_000)
    max_parameters: int = Field(default=50_000_000, ge=1)
    max_sample_epochs: int = Field(default=10_000_000_000, ge=1)
    max_predict_rows: int = Field(default=10_000, ge=1)
    max_active_jobs_per_key: int = Field(default=100, ge=1)
    # Wall-clock seconds from a job's first start; past it the job stops and fails.
    max_job_seconds: float = Field(default=24 * 3600, gt=0)
    # Bytes of checkpoints and datasets one API key may store; unset: no limit. An upload or a
    # submission that would pass it is refused (413) with what to delete.
    max_storage_bytes_per_key: int | None = Field(default=None, ge=1)
    # Periodic checkpoints kept per job besides best and final.
    keep_periodic_checkpoints: int = Field(default=3, ge=1)
    # The default cadence's periodic checkpoints (a spec without checkpoint_every: a tenth of
    # the run) are at least this much training apart: each is a write at once beside the
    # training, and a job of a few seconds needs none to resume from. A killed worker loses
    # about this much training at most; a cadence the spec names, a stop and the final
    # checkpoint are never held back; 0: every tenth of the run.
    checkpoint_seconds: float = Field(default=5.0, ge=0)

    # How long the api trusts what it has looked up before looking it up again: an API key (a
    # revoked one is refused within this), and a finished job's checkpoint for predict (a deleted
    # job stops answering in the other api processes within this).
    key_cache_seconds: float = Field(default=60.0, ge=0)

    # Inference. CPU threads torch gives one forward pass in the api (predict, evaluate, plots).
    # More threads spin between the small operations of a typical request and take CPU from
    # the event loop; raise it for networks whose single passes are large.
    predict_threads: int = Field(default=1, ge=1)
    # Loaded networks kept in memory, least recently used evicted first.
    predict_cache_size: int = Field(default=16, ge=1)
    # Merge concurrent predict requests for one checkpoint into one forward pass.
    predict_batching: bool = True
    # The most rows one merged forward pass takes; a larger request runs alone.
    predict_batch_rows: int = Field(default=1024, ge=1)
    # How long a merged pass waits for more requests before it runs; 0: it runs at once and
    # merges only what arrived while the previous pass ran.
    predict_batch_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    # Samples one evaluate request may generate or read.
    max_evaluate_samples: int = Field(default=1_000_000, ge=1)

    # Event streams. One poller per api process reads what changed for every watched job, this
    # often, in one query per tick; idle streams get a comment this often to keep proxies open.
    events_poll_seconds: float = Field(default=0.5, gt=0)
    events_keepalive_seconds: float = Field(default=15.0, gt=0)

    # Plots. Rendered PNGs kept per checkpoint (or per metrics state), least recently used
    # evicted first; the most samples a plot draws (more are thinned evenly; a dataset spec
    # to plot that would generate more is refused).
    plot_cache_size: int = Field(default=64, ge=1)
    max_plot_samples: int = Field(default=100_000, ge=1)

    # prometheus_client's own variable, unprefixed: set, it keeps metrics in files in this
    # directory, one per process, and a scrape of any process sums them all. `service up` and
    # `service api` set it to a fresh directory for the api processes they start; it is read here
    # too so the app knows to read every process's files rather than only its own registry.
    prometheus_multiproc_dir: Path | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )

    @model_validator(mode="after")
    def _flush_within_lease(self) -> "Settings":
        if self.metrics_flush_seconds > self.lease_seconds / 3:
            raise ValueError(
                f"SERVICE_METRICS_FLUSH_SECONDS ({self.metrics_flush_seconds:g}) must be at most "
                f"a third of SERVICE_LEASE_SECONDS ({self.lease_seconds:g}): each flush renews "
                "the lease"
            )
        return self

    @model_validator(mode="after")
    def _default_database_url(self) -> "Settings":
        if not self.database_url:
            url = f"sqlite:///{(self.data_dir / 'service.db').resolve()}"
            object.__setattr__(self, "database_url", url)
        return self

    @property
    def api_key_file(self) -> Path:
        return self.data_dir / "api-key"
