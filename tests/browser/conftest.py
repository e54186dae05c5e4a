"""Browser tests: Playwright for Python driving Debian's Chromium (`make test` installs the
package when missing; Playwright cannot download its own browsers here), against a stack of
the real processes: a stack of their own (its own database and vhost), stopped when the
browser tests are done, so that its notifier and mail sender never act on the rows other
tests write into the session's database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from testkit.stack import own_stack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Waits long enough for a machine busy with the rest of the suite (2 cores): each wait
# ends as soon as its condition holds, so a quiet run is no slower.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)


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


@pytest.fixture
async def page(chromium_browser):
    """A fresh context per test: no cookies, storage or open modal carried over."""
    context = await chromium_browser.new_context(viewport={"width": 1000, "height": 760})
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture(scope="package")
async def browser_stack(base_settings):
    async with own_stack(base_settings) as (stack, pool):
        yield stack, pool


@pytest.fixture(scope="package")
def stack(browser_stack):
    return browser_stack[0]


@pytest.fixture(scope="package")
def pool(browser_stack):
    """The browser stack's database (the session's `pool` is another one)."""
    return browser_stack[1]
