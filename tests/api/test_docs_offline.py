"""/docs and /redoc render in headless Chromium with every request outside the service refused
and recorded: their scripts, styles and favicon come from the service itself."""

import httpx

from tests.browser import needs_chromium

pytestmark = needs_chromium


def test_swagger_ui_and_redoc_render_with_no_network_beyond_the_service(
    page: "Page",  # noqa: F821
    server: str,
) -> None:
    outside: list[str] = []

    def offline(route: "Route") -> None:  # noqa: F821
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", offline)
    operations = len(httpx.get(f"{server}/openapi.json").json()["paths"])

    page.goto(f"{server}/docs")
    page.locator(
        ".swagger-ui .opblock-summary-path", has_text="/v1/jobs/{job_id}/predict"
    ).first.wait_for()
    shown = page.locator(".swagger-ui .opblock").count()
    swagger_title = page.title()

    page.goto(f"{server}/redoc")
    page.locator("h2", has_text="Submit Job").wait_for()
    redoc_title = page.title()

    assert outside == []
    assert shown >= operations
    assert swagger_title == "PyTorch training service - API docs"
    assert redoc_title == "PyTorch training service - ReDoc"
    for path in ("/docs", "/redoc"):
        policy = httpx.get(f"{server}{path}").headers["content-security-policy"]
        assert "default-src 'self'" in policy
