"""PostgreSQL stops and starts under traffic: every service answers 503 JSON meanwhile (so
Razorpay retries its webhooks), stays up, reconnects by itself, and every payment made
during the outage ends paid and confirmed once."""

from __future__ import annotations

import asyncio

import pytest

from testkit.api_client import (
    call,
    create_order,
    pay,
    payment_status,
    send_webhook,
    verify,
    webhook_body,
)
from testkit.factories import make_booking
from testkit.infra import eventually
from tests.faults.helpers import (
    assert_no_unhandled_errors,
    bookings_with_orders,
    pids,
    wait_all_confirmed_once,
    webhook_deliveries,
)

pytestmark = pytest.mark.e2e

UNAVAILABLE = {"message": "Service temporarily unavailable. Please retry."}


def captured_webhook(booking: dict, order_id: str) -> tuple[bytes, str]:
    payment_id = f"pay_DbDown{booking['booking_id']:08d}"
    entity = {"id": payment_id, "entity": "payment", "amount": booking["amount_paise"],
              "currency": "INR", "status": "captured", "order_id": order_id, "method": "upi"}
    return webhook_body("payment.captured", entity), f"evt_DbDown{booking['booking_id']:08d}"


async def test_database_outage_answers_503_then_recovers_without_restarts(
    stack, postgres, http, pool, new_pool
):
    made = await bookings_with_orders(http, stack, pool, 8)
    direct, via_sandbox = made[:4], made[4:]
    no_order_yet = await make_booking(pool)
    await pool.close()
    before = pids(stack)

    await asyncio.to_thread(postgres.stop)
    try:
        # Razorpay's webhook while the database is down: 503, so Razorpay retries
        for booking, order_id in direct:
            raw, event_id = captured_webhook(booking, order_id)
            status, body, _ = await send_webhook(http, stack, raw, event_id=event_id)
            assert (status, body) == (503, UNAVAILABLE)
        # payments made at the sandbox meanwhile: its webhooks fail and are retried
        checkouts = [await pay(http, stack, order_id) for _, order_id in via_sandbox]
        booking, _ = via_sandbox[0]
        answers = [
            await verify(http, stack, booking, checkouts[0]),
            await create_order(http, stack, no_order_yet),
            await payment_status(http, stack, booking["booking_id"]),
        ]
        assert [(a[0], a[1]) for a in answers] == [(503, UNAVAILABLE)] * 3
        # the browser's checkout callback gets our failure page, not JSON
        form = {k: checkouts[1][k] for k in ("razorpay_payment_id", "razorpay_order_id",
                                             "razorpay_signature")}
        status, _, headers = await call(http, "POST", f"{stack.gateway}/api/razorpay/callback",
                                        data=form)
        assert status == 303 and headers["Location"].endswith("?reason=unavailable")

        async def sandbox_retrying():
            deliveries = await webhook_deliveries(http, stack, [o for _, o in via_sandbox])
            return len(deliveries) == 12 and all(
                d["attempts"] >= 2 and d["last_status"] == 503 for d in deliveries)

        await eventually(sandbox_retrying, timeout=15, interval=0.2)
        for name in before:  # still up and answering
            status, body, _ = await call(http, "GET", f"http://127.0.0.1:{stack.ports[name]}"
                                                      "/healthz")
            assert (status, body) == (200, {"status": "ok"}), name
    finally:
        await asyncio.to_thread(postgres.start)

    # The services reconnect by themselves: create-order works again
    async def order_created():
        status, body, _ = await create_order(http, stack, no_order_yet)
        return body if status == 200 else None

    await eventually(order_created, timeout=20, interval=0.3)
    # Razorpay's retries of the direct webhooks (the same bytes, the same event id)
    for booking, order_id in direct:
        raw, event_id = captured_webhook(booking, order_id)
        status, body, _ = await send_webhook(http, stack, raw, event_id=event_id)
        assert (status, body) == (200, {"status": "ok"})

    pool = await new_pool()
    ids = [booking["booking_id"] for booking, _ in made]
    await wait_all_confirmed_once(pool, ids, timeout=45)
    for booking_id in ids:
        status, body, _ = await payment_status(http, stack, booking_id)
        assert (status, body["status"], body["paid"]) == (200, "paid", True)

    async def retries_delivered():
        deliveries = await webhook_deliveries(http, stack, [o for _, o in via_sandbox])
        return {(d["state"], d["last_status"]) for d in deliveries} == {("delivered", 200)}

    await eventually(retries_delivered, timeout=15, interval=0.3)
    assert pids(stack) == before
    assert_no_unhandled_errors(stack)
