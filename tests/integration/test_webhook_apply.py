"""Applying a webhook delivery in one transaction, against the real PostgreSQL: a capture
runs without a savepoint, and a unique violation runs the whole delivery again behind one."""

from __future__ import annotations

import asyncio

from bench.seed import sample_payload
from testkit.factories import make_booking
from webhook_service.handlers import apply_webhook


async def open_order(pool, booking=None, suffix=""):
    booking = booking or await make_booking(pool, 150_000)
    order_id = f"order_W{booking['booking_id']:013d}{suffix}"
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status) VALUES ($1, $2, $3, 'r', 150000, $4)",
        booking["booking_id"], booking["customer_id"], order_id,
        "failed" if suffix else "created")
    return booking, order_id


def captured(order_id: str, payment_id: str) -> dict:
    payload = sample_payload(order_id, payment_id)
    payload["payload"]["payment"]["entity"]["amount"] = 150_000
    return payload


async def recorded(pool, key: str):
    return await pool.fetchval("SELECT outcome FROM webhook_events WHERE event_key = $1", key)


async def events(pool, order_id: str) -> list[str]:
    rows = await pool.fetch("SELECT routing_key FROM outbox"
                            " WHERE body->'data'->>'order_id' = $1", order_id)
    return [r["routing_key"] for r in rows]


async def test_a_capture_applies_once_and_its_twin_is_a_duplicate(pool):
    _, order_id = await open_order(pool)
    key = f"id:evt_{order_id}"
    payload = captured(order_id, "pay_" + order_id)
    assert await apply_webhook(pool, key, payload, None) == "applied"
    assert await apply_webhook(pool, key, payload, None) == "duplicate"
    assert await recorded(pool, key) == "applied"
    assert await events(pool, order_id) == ["payment.captured"]


async def test_a_redelivery_that_would_now_apply_is_still_a_duplicate(pool):
    """The first delivery found no order (recorded as such); its key comes again once the
    order exists: a duplicate, rolled back, nothing applied."""
    booking = await make_booking(pool, 150_000)
    order_id = f"order_W{booking['booking_id']:013d}"
    key = f"id:evt_{order_id}"
    payload = captured(order_id, "pay_" + order_id)
    assert await apply_webhook(pool, key, payload, None) == "unknown_order"
    await open_order(pool, booking)
    assert await apply_webhook(pool, key, payload, None) == "duplicate"
    assert await recorded(pool, key) == "unknown_order"
    assert await pool.fetchval("SELECT status FROM payments WHERE razorpay_order_id = $1",
                               order_id) == "created"
    assert await events(pool, order_id) == []


async def test_racing_twins_apply_once(pool):
    _, order_id = await open_order(pool)
    key = f"id:evt_{order_id}"
    payload = captured(order_id, "pay_" + order_id)
    results = await asyncio.gather(*(apply_webhook(pool, key, payload, None) for _ in range(8)))
    assert sorted(results) == ["applied"] + ["duplicate"] * 7
    assert await events(pool, order_id) == ["payment.captured"]


async def test_a_second_capture_for_a_paid_booking_is_recorded_as_a_conflict(pool):
    """The unique index refuses it; the delivery is run again behind the savepoint and
    recorded with its outcome, and nothing else changes."""
    booking, first = await open_order(pool)
    assert await apply_webhook(pool, "id:evt_1" + first, captured(first, "pay_1" + first),
                               None) == "applied"
    _, second = await open_order(pool, booking, suffix="B")  # a retry the customer paid too
    key = "id:evt_2" + first
    assert await apply_webhook(pool, key, captured(second, "pay_2" + first), None) == "conflict"
    assert await recorded(pool, key) == "conflict"
    assert await pool.fetchval("SELECT status FROM payments WHERE razorpay_order_id = $1",
                               second) == "failed"
    assert await events(pool, second) == []
