"""A job's status values, shared by the server and the client (which imports nothing else of the
server's). The transitions between them are jobs.py's."""

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # A sweep's trial that the sweep's early stopping ended (DESIGN.md, Sweeps).
    PRUNED = "pruned"


ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
FINAL_STATUSES = frozenset(JobStatus) - ACTIVE_STATUSES


class SweepStatus(StrEnum):
    RUNNING = "running"
    # Every trial ended, and at least one trained to its end or was pruned.
    SUCCEEDED = "succeeded"
    # Every trial failed, or a bayes trial could not be drawn as a job that trains.
    FAILED = "failed"
    CANCELLED = "cancelled"
