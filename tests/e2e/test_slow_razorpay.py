"""A Razorpay that takes 8 s per call under a crowd of creates and verifies: webhooks and
payment-status still answer at once (each gateway lane has its own connections), the
services drop the work the gateway gave up on (no Razorpay calls for nobody afterwards),
and 5 s after Razorpay is fast again create-order answers at once."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from testkit.api_client import (
    create_order,
    pay,
    payment_status,
    sandbox_stats,
    send_webhook,
    set_fault,
    verify,
)
from testkit.factories import make_booking
from testkit.stack import own_stack

pytestmark = pytest.mark.e2e

GATEWAY_WAITS = 6  # seconds; Razorpay's own timeout stays the default 5 s
CREATES, VERIFIES = 80, 40


@pytest.fixture(scope="module")
async def private(base_settings):
    """Its own stack: the fault and the crowd must not reach other tests."""
    env = {"GATEWAY_UPSTREAM_TIMEOUT_SECONDS": str(GATEWAY_WAITS),
           "RAZORPAY_TIMEOUT_SECONDS": "5", "DB_POOL_MAX": "5"}
    async with own_stack(base_settings, env) as (stack, pool):
        yield stack, pool


async def timed(coroutine) -> tuple[float, tuple]:
    started = time.monotonic()
    answer = await coroutine
    return time.monotonic() - started, answer


async def test_a_slow_razorpay_starves_nothing_and_leaves_no_backlog(private):
    stack, pool = private
    # room for the whole crowd at once (aiohttp's default is 100 connections)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
        await brownout(stack, pool, http)


async def brownout(stack, pool, http):
    paid = []
    for _ in range(VERIFIES):  # bookings whose payment verify will fetch from Razorpay
        booking = await make_booking(pool)
        status, order, _ = await create_order(http, stack, booking)
        assert status == 200, order
        paid.append((booking, await pay(http, stack, order["order_id"], enabled=False)))
    fresh = [await make_booking(pool) for _ in range(CREATES + 1)]
    status_of = paid[0][0]["booking_id"]

    await set_fault(http, stack, mode="slow", delay_seconds=8)
    crowd = [asyncio.create_task(create_order(http, stack, b)) for b in fresh[:CREATES]]
    crowd += [asyncio.create_task(verify(http, stack, b, c)) for b, c in paid]
    await asyncio.sleep(1.5)  # every one of them is now waiting on Razorpay

    unknown = json.dumps({"event": "refund.processed", "payload": {}, "created_at": 3}).encode()
    async with aiohttp.ClientSession() as razorpay_and_browser:  # not the crowd's connections
        for _ in range(5):
            took, (status, body, _) = await timed(
                send_webhook(razorpay_and_browser, stack, unknown))
            assert status == 200 and took < 1.0, (status, body, took)
            took, (status, body, _) = await timed(
                payment_status(razorpay_and_browser, stack, status_of))
            assert status == 200 and took < 1.0, (status, body, took)
    assert sum(task.done() for task in crowd) == 0

    answers = await asyncio.gather(*crowd)
    assert {a[0] for a in answers} <= {503, 504}, {a[0] for a in answers}
    # The gateway has given up on all of them: so have the services. Nothing they had
    # queued goes to Razorpay afterwards.
    await asyncio.sleep(1)
    calls_after_giving_up = (await sandbox_stats(http, stack))["api_requests"]
    await set_fault(http, stack, mode="none")
    await asyncio.sleep(5)
    assert (await sandbox_stats(http, stack))["api_requests"] - calls_after_giving_up <= 3

    took, (status, body, _) = await timed(create_order(http, stack, fresh[-1]))
    assert status == 200 and took < 2.0, (status, body, took)
    logs = stack.logs()
    assert '"unhandled error"' not in logs
    assert "request abandoned" in logs  # the services said why they stopped
