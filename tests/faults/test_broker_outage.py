"""RabbitMQ goes away under traffic and comes back: nothing is lost, nothing is doubled,
and none of our processes is restarted for it."""

from __future__ import annotations

import asyncio

import pytest

from testkit.api_client import pay, payment_status, verify
from testkit.infra import eventually
from tests.faults.helpers import (
    bookings_with_orders,
    confirmed_count,
    pids,
    unsent,
    unsent_captured,
    wait_all_confirmed_once,
    webhook_deliveries,
)

pytestmark = pytest.mark.e2e

BOOKINGS = 20


async def test_broker_outage_keeps_payments_flowing_and_confirms_each_once_after(
    stack, rabbit, http, pool
):
    made = await bookings_with_orders(http, stack, pool, BOOKINGS)
    ids = [booking["booking_id"] for booking, _ in made]
    await eventually(lambda: _zero(unsent(pool)), timeout=15)  # order.created all published
    before = pids(stack)

    await asyncio.to_thread(rabbit.stop)
    try:
        checkouts = await asyncio.gather(*(pay(http, stack, order_id) for _, order_id in made))
        # the browser comes back for half of them, racing the webhooks
        verified = await asyncio.gather(*(
            verify(http, stack, booking, checkout)
            for (booking, _), checkout in list(zip(made, checkouts, strict=True))[::2]))
        assert [v[0] for v in verified] == [200] * len(verified), verified

        async def all_paid():
            answers = await asyncio.gather(*(payment_status(http, stack, i) for i in ids))
            return all(a[0] == 200 and a[1]["status"] == "paid" for a in answers)

        await eventually(all_paid, timeout=20, interval=0.25)

        async def webhooks_done():
            deliveries = await webhook_deliveries(http, stack, [o for _, o in made])
            return deliveries if len(deliveries) == 3 * BOOKINGS and all(
                d["state"] == "delivered" for d in deliveries) else None

        deliveries = await eventually(webhooks_done, timeout=20, interval=0.25)
        # every webhook was answered 2xx at its first attempt: no retry was needed
        assert {(d["attempts"], d["last_status"]) for d in deliveries} == {(1, 200)}
        # the outbox holds the events: one unsent capture per booking, nothing confirmed
        assert await unsent_captured(pool, ids) == BOOKINGS
        assert await confirmed_count(pool, ids) == 0
    finally:
        await asyncio.to_thread(rabbit.start)

    await wait_all_confirmed_once(pool, ids, timeout=60)
    await eventually(lambda: _zero(unsent(pool)), timeout=15)
    assert pids(stack) == before  # the same processes: they reconnected by themselves


async def _zero(count) -> bool:
    return await count == 0
