"""Browser tests: Playwright for Python driving Debian's Chromium (`make test` installs the
package when it is missing; Playwright cannot download browsers here), headless."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Waits long enough for a machine busy with the rest of the suite (2 cores): each wait
# ends as soon as its condition holds, so a quiet run is no slower.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
async def chromium_browser():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: `make test` installs it")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def page(chromium_browser):
    """A fresh context per test: no cookies, storage or open modal carried over."""
    context = await chromium_browser.new_context(viewport={"width": 1000, "height": 760})
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    yield page
    await context.close()
