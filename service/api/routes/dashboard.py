"""The dashboard at /: a page, its scripts, style sheet and vendored chart library, all served
from this package.

The page holds no data: its scripts ask the API for it with the key the user typed, which
stays in the browser's sessionStorage. The Content-Security-Policy lets the page load nothing
from anywhere but this server (plots and downloads are blob: URLs).
"""

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from service.errors import NotFound

router = APIRouter(include_in_schema=False)

WEB = resources.files("service.web")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
JS = "text/javascript"
# Everything under /dashboard/, by its path in service/web: nothing else there is served.
ASSETS = {
    "app.js": JS,
    "api.js": JS,
    "charts.js": JS,
    "compare.js": JS,
    "format.js": JS,
    "job.js": JS,
    "job_details.js": JS,
    "jobs.js": JS,
    "predict.js": JS,
    "sweep.js": JS,
    "sweeps.js": JS,
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
    "vendor/uplot/uPlot.iife.min.js": JS,
    "vendor/uplot/uPlot.min.css": "text/css",
    "vendor/swagger-ui/swagger-ui-bundle.js": JS,
    "vendor/swagger-ui/swagger-ui.css": "text/css",
    "vendor/redoc/redoc.standalone.js": JS,
}


@router.get("/", response_class=HTMLResponse)
def dashboard() -> HTMLResponse:
    return HTMLResponse(WEB.joinpath("index.html").read_text(), headers=SECURITY_HEADERS)


@router.get("/favicon.ico")
def favicon() -> Response:
    return asset("favicon.svg")


@router.get("/dashboard/{name:path}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no dashboard file {name!r}")
    return Response(_read(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@cache
def _read(name: str) -> bytes:
    return WEB.joinpath(name).read_bytes()
