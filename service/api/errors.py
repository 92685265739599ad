"""One error envelope for every failure: {"error": <class name>, "detail": <what to fix>}."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from service.db import DATABASE_FAULTS, database_fault, is_database_fault
from service.errors import ServiceError
from service.schemas import ErrorOut

log = logging.getLogger(__name__)

HTTP_ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}


def error_response(
    status_code: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorOut(error=error, detail=detail).model_dump()
    return JSONResponse(body, status_code=status_code, headers=headers)


def service_error_response(error: ServiceError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return error_response(error.status_code, type(error).__name__, error.message, headers)


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """Pydantic's errors as one readable line: where, and what was wrong there."""
    parts = []
    for error in errors[:10]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    more = len(errors) - 10
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        return service_error_response(error)

    async def _database_fault(request: Request, error: Exception) -> JSONResponse:
        fault = database_fault(error)
        log.warning("%s %s: %s", request.method, request.url.path, fault.message)
        return service_error_response(fault)

    for fault in DATABASE_FAULTS:
        app.add_exception_handler(fault, _database_fault)

    @app.exception_handler(exc.DBAPIError)
    async def _driver_error(request: Request, error: exc.DBAPIError) -> JSONResponse:
        # Any other driver error is a 503 only when its connection died under it; else it is
        # the service's own fault, and the server-error middleware makes it a 500.
        if is_database_fault(error):
            return await _database_fault(request, error)
        if isinstance(error, exc.DataError) and "NUL" in str(error.orig):
            # PostgreSQL cannot store text holding NUL (SQLite can): the request's fault.
            detail = "the request holds a NUL character (%00 or \\u0000), which cannot be stored"
            return error_response(422, "InvalidRequest", f"{detail}; remove it")
        raise error

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(
            422, "InvalidRequest", describe_validation_errors(list(error.errors()))
        )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400:
            # FastAPI's only 400: a body it could not decode (not UTF-8, or cut short).
            detail = f"the request body could not be read ({error.detail}); send UTF-8 JSON"
            return error_response(422, "InvalidRequest", detail)
        name = HTTP_ERROR_NAMES.get(error.status_code, "HTTPError")
        headers = dict(error.headers or {})
        allow = allowed_methods(request) if error.status_code == 405 else None
        if allow is not None:
            headers["Allow"] = allow
        return error_response(error.status_code, name, str(error.detail), headers)


def allowed_methods(request: Request) -> str | None:
    """The methods the OpenAPI document lists for a request's path, for a 405's Allow; None
    for a path it does not describe.

    Starlette lists the methods of the first route whose path matches, but one path can be
    served by several routes (/v1/jobs: GET lists, POST submits), and a literal path is a
    resource of its own even where a template matches it too (/v1/datasets/plot.png is not
    the dataset "plot.png").
    """
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    matching = [
        (template, operations)
        for template, operations in paths.items()
        if compile_path(template)[0].match(request.url.path)
    ]
    if not matching:
        return None
    _, operations = min(matching, key=lambda item: item[0].count("{"))
    return ", ".join(sorted(method.upper() for method in operations))


STATUS_DESCRIPTIONS = {
    401: "No API key, or an unknown one",
    404: "No such resource for this API key",
    406: "The Accept header asks for a type this route does not produce",
    409: "The resource is not in a state that allows this",
    413: "The request body is larger than SERVICE_MAX_BODY_BYTES, or what it would store "
    "takes the key past SERVICE_MAX_STORAGE_BYTES_PER_KEY",
    415: "The request body's Content-Type is not one this route reads",
    422: "The request is well-formed but cannot be carried out as written",
    429: "Too many queued and running jobs for this key; see Retry-After",
    503: "DatabaseUnavailable: the database is unreachable or did not answer in time; "
    "see Retry-After",
    507: "StorageFull: the database or its disk is full; free space, then retry",
}


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can return. Every /v1 route can answer
    401 (key), 413 (body size), 422 (a malformed parameter, in the envelope, not FastAPI's) and
    503 (the database, which every key is checked against, is unavailable)."""
    return {
        status: {
            "model": ErrorOut,
            "description": STATUS_DESCRIPTIONS[status],
            **({"headers": RETRY_AFTER} if status in (429, 503) else {}),
        }
        for status in sorted({401, 413, 422, 503, *statuses})
    }
