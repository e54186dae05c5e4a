"""The state machine as applied in SQL: forward-only, amount-checked, one event per change."""

import asyncio

import pytest

from ops.factories import make_booking
from shared.payment_state import PaymentOutcome, PaymentStatus
from shared.payments import record_outcome

S = PaymentStatus


async def open_order(pool, amount_paise=150_000):
    booking = await make_booking(pool, amount_paise)
    order_id = f"order_T{booking['booking_id']:013d}"
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise) VALUES ($1, $2, $3, 'r', $4)",
            booking["booking_id"], booking["customer_id"], order_id, amount_paise,
        )
    return booking, order_id


async def apply(pool, order_id, status, payment_id=None, amount=150_000):
    payment_id = payment_id or "pay_" + order_id.removeprefix("order_")
    async with pool.acquire() as conn, conn.transaction():
        return await record_outcome(
            conn, PaymentOutcome(order_id, payment_id, status, amount), "test", None
        )


async def events_for(pool, order_id):
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT routing_key FROM outbox WHERE body->'data'->>'order_id' = $1"
            " ORDER BY created_at", order_id)
    return [r["routing_key"] for r in rows]


async def test_failed_then_captured_is_late_authorisation(pool):
    _, order_id = await open_order(pool)
    assert (await apply(pool, order_id, S.FAILED)).applied
    assert (await apply(pool, order_id, S.AUTHORIZED)).applied
    recorded = await apply(pool, order_id, S.CAPTURED)
    assert recorded.applied and recorded.payment["status"] == "captured"
    assert await events_for(pool, order_id) == ["payment.failed", "payment.captured"]


async def test_captured_then_failed_changes_nothing(pool):
    _, order_id = await open_order(pool)
    assert (await apply(pool, order_id, S.CAPTURED)).applied
    stale = await apply(pool, order_id, S.FAILED, payment_id="pay_T2")
    assert not stale.applied and stale.payment["status"] == "captured"
    assert stale.payment["razorpay_payment_id"] == "pay_" + order_id.removeprefix("order_")
    duplicate = await apply(pool, order_id, S.CAPTURED)
    assert not duplicate.applied
    assert await events_for(pool, order_id) == ["payment.captured"]


async def test_capture_with_wrong_amount_is_refused(pool):
    _, order_id = await open_order(pool)
    recorded = await apply(pool, order_id, S.CAPTURED, amount=100)
    assert not recorded.applied and recorded.payment["status"] == "created"
    assert await events_for(pool, order_id) == []


async def test_unknown_order_is_no_effect(pool):
    recorded = await apply(pool, "order_DoesNotExist00", S.CAPTURED)
    assert recorded == type(recorded)(False, None)


async def test_one_payment_cannot_capture_two_orders(pool):
    _, first = await open_order(pool)
    _, second = await open_order(pool)
    assert (await apply(pool, first, S.CAPTURED, payment_id="pay_SHARED")).applied
    clash = await apply(pool, second, S.CAPTURED, payment_id="pay_SHARED")
    assert clash.conflict and not clash.applied
    assert clash.payment["status"] == "created"


async def test_fifty_racing_captures_apply_once(pool):
    _, order_id = await open_order(pool)
    results = await asyncio.gather(*(apply(pool, order_id, S.CAPTURED) for _ in range(50)))
    assert sum(r.applied for r in results) == 1
    assert await events_for(pool, order_id) == ["payment.captured"]


async def test_database_refuses_second_open_order_and_second_capture(pool):
    import asyncpg

    booking, order_id = await open_order(pool)
    insert = (
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status) VALUES ($1, $2, $3, 'r', 150000, $4)"
    )
    ids = booking["booking_id"], booking["customer_id"]
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, *ids, order_id + "B", "created")
        await apply(pool, order_id, S.CAPTURED)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, *ids, order_id + "C", "captured")
