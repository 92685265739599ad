"""The dashboard at /: a page, a script and a style sheet, all served from this package.

The page holds no data: its script asks the API for it with the key the user typed, which
stays in the browser's sessionStorage. The Content-Security-Policy lets the page load nothing
from anywhere but this server (plots are shown as blob: URLs).
"""

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

WEB = resources.files("service.web")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}


@router.get("/", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    return HTMLResponse(WEB.joinpath("index.html").read_text(), headers=SECURITY_HEADERS)


@router.get("/dashboard/app.js")
def script() -> Response:
    return _asset("app.js")


@router.get("/dashboard/style.css")
def style() -> Response:
    return _asset("style.css")


def _asset(name: str) -> Response:
    return Response(
        WEB.joinpath(name).read_text(), media_type=ASSETS[name], headers=SECURITY_HEADERS
    )
