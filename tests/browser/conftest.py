"""Browser tests: Playwright for Python driving Debian's Chromium (`make test` installs the
package when it is missing; Playwright cannot download browsers here), headless."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


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
    page = await context.new_page()
    yield page
    await context.close()
