"""Browser tests: Playwright for Python driving Debian's Chromium (`make test` installs the
package when missing; Playwright cannot download its own browsers here), against a stack of
the real processes: the e2e tests' `stack` and `http`, imported below."""

from __future__ import annotations

import shutil

import pytest
from playwright.async_api import async_playwright

from tests.e2e.conftest import http, stack  # noqa: F401 - the e2e tests' stack, as they run it


@pytest.fixture(scope="session")
async def playwright_driver():
    async with async_playwright() as driver:
        yield driver


async def launch_chromium(driver, *args: str):
    """Debian's Chromium, headless, with extra command-line switches."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    return await driver.chromium.launch(executable_path=executable, headless=True,
                                        args=["--no-sandbox", *args])


@pytest.fixture(scope="session")
async def chromium_browser(playwright_driver):
    browser = await launch_chromium(playwright_driver)
    yield browser
    await browser.close()

