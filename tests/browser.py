"""Headless Chromium for the dashboard tests: Debian's `chromium`, driven by Playwright (no
browser download). The pages' Content-Security-Policy forbids the eval that Playwright's
wait_for_function needs, so waits on the page's state are polled from here."""

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous: pages wait on real workers sharing two cores with the browser and the server.
WAIT_MS = 60_000

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on PATH: `apt-get install chromium` (.ci/run installs it) to run the "
    "dashboard tests",
)

T = TypeVar("T")


@contextmanager
def open_page(*, width: int = 1200, height: int = 900) -> Iterator["Page"]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            browser.close()
        assert errors == [], f"the page threw: {errors}"


def sign_in(page: "Page", *, server: str, api_key: str) -> None:
    page.goto(f"{server}/")
    page.fill("#key-input", api_key)
    page.click("#key-form button[type=submit]")
    page.locator("#jobs-view").wait_for()


def poll(page: "Page", read: Callable[[], T], until: Callable[[T], bool], what: str) -> T:
    """read() every 100 ms until until(value); the value, or AssertionError naming `what`."""
    value = read()
    for _ in range(WAIT_MS // 100):
        if until(value):
            return value
        page.wait_for_timeout(100)
        value = read()
    raise AssertionError(f"waited for {what}; last seen {value!r}")


def attribute(page: "Page", selector: str, name: str) -> int:
    """An integer data attribute the dashboard keeps for tests and tools (0 while absent)."""
    return int(page.get_attribute(selector, name) or 0)
