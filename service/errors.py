"""The error tree. Every error a caller can cause is a ServiceError carrying its HTTP status.

The api renders any ServiceError as {"error": <class name>, "detail": <message>}; the worker
records its message as the job's error.
"""


class ServiceError(Exception):
    """Root of every error the service reports on purpose."""

    status_code = 500
    # Seconds after which the same request may succeed; sent as Retry-After.
    retry_after: int | None = None

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class Unauthorized(ServiceError):
    """The request carries no API key, or one the service does not know."""

    status_code = 401


class NotFound(ServiceError):
    """The resource does not exist, or belongs to another API key."""

    status_code = 404


class Conflict(ServiceError):
    """The request is valid but the resource is not in a state that allows it."""

    status_code = 409


class PayloadTooLarge(ServiceError):
    """The request body is larger than the configured limit."""

    status_code = 413


class StorageQuotaExceeded(PayloadTooLarge):
    """Storing this would take the API key past SERVICE_MAX_STORAGE_BYTES_PER_KEY."""


class UnsupportedMediaType(ServiceError):
    """The request body's Content-Type is not one the route reads."""

    status_code = 415


class InvalidSpec(ServiceError):
    """A job spec that is well-formed JSON but cannot be trained as written."""

    status_code = 422


class InvalidInput(ServiceError):
    """Inputs for predict or evaluate that do not fit the network."""

    status_code = 422


class InvalidUpload(ServiceError):
    """An uploaded dataset file that is not a readable CSV or NPZ of numbers."""

    status_code = 422


class TooManyJobs(ServiceError):
    """The API key already has as many queued and running jobs as allowed."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailable(ServiceError):
    """The database cannot be reached, or did not answer in time: not the request's fault."""

    status_code = 503
    retry_after = 5


class StorageFull(ServiceError):
    """The database or its disk is full: nothing more can be stored until space is freed."""

    status_code = 507


class TrainingFailed(ServiceError):
    """Training stopped on its own: a non-finite loss, or a runtime error in the network."""

    status_code = 422


class LeaseLost(ServiceError):
    """The worker no longer holds the job's lease; it must stop writing and abandon the job."""

    status_code = 409
