"""One error envelope for every failure: {"error": <class name>, "detail": <what to fix>}."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service.errors import ServiceError, TooManyJobs
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
        headers = (
            {"Retry-After": str(error.retry_after)} if isinstance(error, TooManyJobs) else None
        )
        return error_response(error.status_code, type(error).__name__, error.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(
            422, "InvalidRequest", describe_validation_errors(list(error.errors()))
        )

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400:
            # FastAPI's only 400: a body it could not decode (not UTF-8, or cut short).
            detail = f"the request body could not be read ({error.detail}); send UTF-8 JSON"
            return error_response(422, "InvalidRequest", detail)
        name = HTTP_ERROR_NAMES.get(error.status_code, "HTTPError")
        return error_response(error.status_code, name, str(error.detail), dict(error.headers or {}))


STATUS_DESCRIPTIONS = {
    401: "No API key, or an unknown one",
    404: "No such resource for this API key",
    406: "The Accept header asks for a type this route does not produce",
    409: "The resource is not in a state that allows this",
    413: "The request body is larger than SERVICE_MAX_BODY_BYTES",
    415: "The request body's Content-Type is not one this route reads",
    422: "The request is well-formed but cannot be carried out as written",
    429: "Too many queued and running jobs for this key; see Retry-After",
    503: "Not ready: the database is unreachable or its schema is not at head",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can return. Every /v1 route can answer
    401 (key), 413 (body size) and 422 (a malformed parameter, in the envelope, not FastAPI's)."""
    return {
        status: {"model": ErrorOut, "description": STATUS_DESCRIPTIONS[status]}
        for status in sorted({401, 413, 422, *statuses})
    }
