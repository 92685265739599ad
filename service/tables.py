"""ORM rows. Neural networks are "networks" elsewhere; here a row is a row."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.statuses import JobStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite stores no zone, so one is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class StatusString(TypeDecorator[JobStatus]):
    """A JobStatus stored as its plain string (no database enum type, so adding a status needs
    no migration), read back as the enum member."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: JobStatus | None, dialect: Any) -> str | None:
        return None if value is None else JobStatus(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> JobStatus | None:
        return None if value is None else JobStatus(value)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the key: keys are 256-bit random tokens, so a fast hash is enough.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When an api process last looked the key up (it trusts it SERVICE_KEY_CACHE_SECONDS after).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by `service keys revoke`: the key is refused from then on; its jobs stay.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        # Ids sort by creation time (see ids.py): listing and claiming walk these in id order.
        Index("ix_jobs_owner_id_id", "owner_id", "id"),
        Index("ix_jobs_status_id", "status", "id"),
        # A sweep's trial numbers: the database itself refuses a trial created twice.
        Index("ix_jobs_sweep_id_sweep_trial", "sweep_id", "sweep_trial", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[JobStatus] = mapped_column(StatusString)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    parameters: Mapped[int] = mapped_column(BigInteger)
    epochs: Mapped[int] = mapped_column(Integer)
    # The last epoch whose metrics are stored.
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    device: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    # Why the job ended before its last epoch, one sentence; null when it trained them all.
    stop_reason: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A sweep's trial: its sweep, its number there (0-based) and the values the sweep chose.
    # No foreign key: SQLite cannot drop a column that has one without copying the table
    # (which would cascade-delete metrics and checkpoints); deleting a sweep deletes its jobs.
    sweep_id: Mapped[str | None] = mapped_column(String(32))
    sweep_trial: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Sweep(Base):
    """Many jobs that compare configurations (service/sweeps/). Its trials are jobs rows;
    how many of them ended how is counted from there, not stored here."""

    __tablename__ = "sweeps"
    __table_args__ = (Index("ix_sweeps_owner_id_id", "owner_id", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    # The SweepSpec as submitted (validated).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Every trial's params for grid and random, decided at submission; null for bayes.
    planned: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Trials the sweep will run at most (bayes may run fewer: its values can run out).
    max_trials: Mapped[int] = mapped_column(Integer)
    # Trials created so far; the next trial's number. Changed only under the sweep's row lock.
    trials_created: Mapped[int] = mapped_column(Integer, default=0)
    # The size limits in force at submission, for trials drawn later (bayes).
    limits: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Why the sweep failed, or stopped creating trials; null while it goes well.
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    """One epoch's weights; an epoch can be periodic, best and final at once."""

    __tablename__ = "checkpoints"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    is_periodic: Mapped[bool] = mapped_column(Boolean, default=False)
    is_best: Mapped[bool] = mapped_column(Boolean, default=False)
    is_final: Mapped[bool] = mapped_column(Boolean, default=False)
    metric: Mapped[float | None] = mapped_column(Float)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # safetensors of the network's state_dict; loadable with strict=True.
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    # safetensors of optimizer, schedule, random-generator and standardisation state.
    state: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(8))
    samples: Mapped[int] = mapped_column(Integer)
    input_shape: Mapped[list[int]] = mapped_column(JSON)
    task: Mapped[str] = mapped_column(String(16))
    num_classes: Mapped[int | None] = mapped_column(Integer)
    target_shape: Mapped[list[int]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # What each class index stands for (a ZIP's folder names); null when the upload names none.
    class_names: Mapped[list[str] | None] = mapped_column(JSON)
    # x holds uint8 pictures (channels, height, width) rather than float32 features.
    images: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # safetensors with tensors "x" and "y".
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
