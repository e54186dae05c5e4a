"""The state machine as applied in SQL: forward-only, amount-checked, one event per change."""

import asyncio

import pytest

from shared.payment_state import PaymentOutcome, PaymentStatus
from shared.payments import RECORD_OUTCOME, record_outcome
from testkit.factories import make_booking
from testkit.infra import eventually

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
    assert not clash.applied
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


async def test_a_refused_second_capture_leaves_the_callers_transaction_usable(pool):
    """Another order of the same booking is captured already: the unique index refuses this
    one, and the caller's transaction still writes and commits what it does next."""
    booking, first = await open_order(pool)
    assert (await apply(pool, first, S.CAPTURED)).applied
    second = first + "B"
    async with pool.acquire() as conn:
        await conn.execute(  # an order opened before the first was paid, still open
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise, status) VALUES ($1, $2, $3, 'r', 150000, 'failed')",
            booking["booking_id"], booking["customer_id"], second)
        async with conn.transaction():
            clash = await record_outcome(
                conn, PaymentOutcome(second, "pay_OTHER", S.CAPTURED, 150_000), "test", None)
            assert not clash.applied and clash.payment["status"] == "failed"
            await conn.execute("UPDATE payments SET failure_code = 'after' WHERE"
                               " razorpay_order_id = $1", second)
    assert await pool.fetchval("SELECT failure_code FROM payments WHERE razorpay_order_id = $1",
                               second) == "after"
    assert await events_for(pool, second) == []


async def test_a_capture_waits_for_a_cancellation_in_flight_and_refunds_it(pool):
    """The capture reads its booking FOR SHARE in the same statement: a cancellation that
    has not committed yet is waited for, then seen, and the payment refunded in full."""
    booking, order_id = await open_order(pool)
    async with pool.acquire() as canceller:
        cancelling = canceller.transaction()
        await cancelling.start()
        await canceller.execute("UPDATE bookings SET status = 'cancelled', cancelled_at = now()"
                                " WHERE id = $1", booking["booking_id"])
        capture = asyncio.create_task(apply(pool, order_id, S.CAPTURED))

        async def capture_waits_on_a_lock():
            # the statement's start: pg_stat_activity keeps only its first kilobyte
            return await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND starts_with(query, $1)",
                RECORD_OUTCOME[:200])

        await eventually(capture_waits_on_a_lock)
        assert not capture.done()
        await cancelling.commit()
    recorded = await capture
    assert recorded.applied and recorded.payment["booking_status"] == "cancelled"
    refunds = await pool.fetch("SELECT cause, amount_paise FROM refunds WHERE booking_id = $1",
                               booking["booking_id"])
    assert [tuple(r) for r in refunds] == [("captured_after_cancellation", 150_000)]
    assert await events_for(pool, order_id) == ["payment.captured"]


async def test_a_capture_by_another_payment_committed_while_waiting_is_a_conflict(pool):
    """Payment B's capture waits on payment A's uncommitted capture of the same order, then
    matches nothing: the order keeps A, so B is a conflict (a second charge to refund)."""
    _, order_id = await open_order(pool)
    async with pool.acquire() as first:
        async with first.transaction():
            assert (await record_outcome(first, PaymentOutcome(
                order_id, "pay_A", S.CAPTURED, 150_000), "webhook", None)).applied
            second = asyncio.create_task(apply(pool, order_id, S.CAPTURED, "pay_B"))

            async def second_waits_on_a_lock():
                return await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND starts_with(query, $1)",
                    RECORD_OUTCOME[:200])

            await eventually(second_waits_on_a_lock)
            assert not second.done()
    recorded = await second
    assert not recorded.applied and recorded.conflict
    assert recorded.payment["razorpay_payment_id"] == "pay_A"
    assert not (await apply(pool, order_id, S.CAPTURED, "pay_A")).conflict  # its own capture
    assert await events_for(pool, order_id) == ["payment.captured"]
