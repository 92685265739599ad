"""The request-body limit, enforced before a route reads the body."""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response

UPLOAD_PATH = "/v1/datasets"


class BodySizeLimit:
    """413 from the Content-Length header before the body is read; for a body sent without one
    (chunked), counted while it streams in and stopped as soon as it passes the limit.

    Dataset uploads (POST /v1/datasets) have a limit of their own: their file streams to a
    temporary file rather than into memory."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] == UPLOAD_PATH:
            limit, setting = self.max_upload_bytes, "SERVICE_MAX_UPLOAD_BYTES"
        else:
            limit, setting = self.max_bytes, "SERVICE_MAX_BODY_BYTES"
        too_large = f"the request body is larger than {limit:,} bytes ({setting})"
        declared = next(
            (value for name, value in scope["headers"] if name == b"content-length"), None
        )
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                response = error_response(413, "PayloadTooLarge", too_large)
                await response(scope, receive, send)
            else:
                # The server reads no more than Content-Length bytes into this request.
                await self.app(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through FastAPI's body parsing unchanged.
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, counting_receive, send)
