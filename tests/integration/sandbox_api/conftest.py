"""The sandbox API's tests: each module runs its own sandbox (its `sandbox` fixture) with one
webhook-recording receiver, and every test starts from a reset sandbox and receiver."""

from __future__ import annotations

import pytest
import pytest_asyncio
import razorpay
from aiohttp import web

from tests.support.sandbox import KEY_ID, KEY_SECRET, Receiver, start


@pytest_asyncio.fixture(scope="module")
async def receiver():
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/webhook", receiver.handle)
    runner, url = await start(app)
    receiver.url = url + "/webhook"
    yield receiver
    await runner.cleanup()


@pytest_asyncio.fixture(autouse=True)
async def clean_state(sandbox, receiver):
    await sandbox.control("POST", "/sandbox/reset")
    receiver.received.clear()
    receiver.fail_next = 0


@pytest.fixture
def client(sandbox) -> razorpay.Client:
    return razorpay.Client(auth=(KEY_ID, KEY_SECRET), base_url=sandbox.url)
