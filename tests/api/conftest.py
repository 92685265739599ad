"""The browser for the dashboard and docs tests (tests/browser.py)."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser import open_page

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture
def page(server: str, backend: str) -> Iterator["Page"]:
    """A headless Chromium page, its server's api on SQLite only: pages speak HTTP, so the
    PostgreSQL half would test nothing new."""
    if backend != "sqlite":
        pytest.skip("the browser speaks HTTP only: run once, on SQLite")
    with open_page() as page:
        yield page
