"""Session fixtures for the end-to-end tests: one stack of real processes for the run."""

from __future__ import annotations

import aiohttp
import pytest

from ops.stack import running_stack


@pytest.fixture(scope="session")
def stack(database_url, amqp_url):
    with running_stack(database_url, amqp_url) as stack:
        yield stack


@pytest.fixture(scope="session")
async def http():
    async with aiohttp.ClientSession() as session:
        yield session
