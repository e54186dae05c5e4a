"""The notifier's cancellation and refund handlers on a real database: passes revoked once,
one mail per fact however often (and under however many event ids) it is delivered."""

from __future__ import annotations

from shared.events import (
    BookingCancelled,
    Envelope,
    PaymentCaptured,
    RefundCreated,
    RefundFailed,
    RefundProcessed,
)
from testkit.factories import make_booking
from tests.support.notifier import apply_event


async def apply(pool, event) -> bool:
    envelope = Envelope.wrap(event, "test")
    async with pool.acquire() as conn:
        return await apply_event(conn, envelope.event(), envelope.id, pass_secret="itg-secret")


async def captured_on_record(pool) -> tuple[dict, PaymentCaptured]:
    """A booking, its captured payment on record (the notifier believes no event alone),
    and the payment.captured event for it, not yet applied."""
    booking = await make_booking(pool)
    n = booking["booking_id"]
    captured = PaymentCaptured(
        booking_id=n, customer_id=booking["customer_id"], order_id=f"order_ItgRf{n:09d}",
        payment_id=f"pay_ItgRf{n:011d}", amount_paise=booking["amount_paise"], source="verify")
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)",
        n, captured.customer_id, captured.order_id, captured.amount_paise, captured.payment_id)
    return booking, captured


async def confirmed_booking(pool) -> dict:
    booking, captured = await captured_on_record(pool)
    await apply(pool, captured)
    return booking


async def mails(pool, booking_id) -> list[tuple[str, dict]]:
    rows = await pool.fetch(
        "SELECT kind, details FROM notifications WHERE booking_id = $1 ORDER BY id", booking_id)
    return [(r["kind"], r["details"]) for r in rows]


async def revoked(pool, booking_id) -> list[bool]:
    rows = await pool.fetch(
        "SELECT revoked_at IS NOT NULL AS revoked FROM passes WHERE booking_id = $1 ORDER BY id",
        booking_id)
    return [r["revoked"] for r in rows]


async def test_cancellation_revokes_both_passes_and_mails_once(pool):
    booking = await confirmed_booking(pool)
    booking_id = booking["booking_id"]
    assert await revoked(pool, booking_id) == [False, False]
    # The cancellation as order_service records it; the mail's figures are these.
    await pool.execute(
        "UPDATE bookings SET status = 'cancelled', cancellation_reason = 'plans changed',"
        " cancellation_fee_paise = 50000 WHERE id = $1", booking_id)
    await pool.execute(
        "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, next_check_at)"
        " SELECT id, booking_id, 100000, 'cancellation', NULL FROM payments"
        " WHERE booking_id = $1 AND status = 'captured'", booking_id)
    event = BookingCancelled(booking_id=booking_id, customer_id=booking["customer_id"],
                             paid=True, refund_paise=100_000, cancellation_fee_paise=50_000,
                             reason="plans changed")
    for _ in range(3):  # the same fact under three event ids
        assert await apply(pool, event)

    assert await revoked(pool, booking_id) == [True, True]
    cancelled = [d for k, d in await mails(pool, booking_id) if k == "booking_cancelled"]
    assert cancelled == [{"reason": "plans changed", "refund_amount_paise": 100_000,
                          "cancellation_fee_paise": 50_000}]


async def test_refund_mails_once_each_and_a_full_refund_revokes_the_passes(pool):
    booking = await confirmed_booking(pool)
    booking_id, amount = booking["booking_id"], booking["amount_paise"]
    payment_id = await pool.fetchval(  # the captured payment confirmed_booking recorded
        "SELECT id FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    common = {"booking_id": booking_id, "customer_id": booking["customer_id"]}
    # The rows below are records only: no next_check_at, so the session stack's refund worker
    # (same database) never submits them, fails them at Razorpay and so lowers refunded_paise.

    part = await pool.fetchval(
        "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, status, next_check_at)"
        " VALUES ($1, $2, $3, 'admin', 'requested', NULL) RETURNING id", payment_id, booking_id,
        amount // 3)
    await apply(pool, RefundCreated(refund_id=part, amount_paise=amount // 3, cause="admin",
                                    **common))
    await pool.execute("UPDATE refunds SET status = 'processed' WHERE id = $1", part)
    await apply(pool, RefundProcessed(refund_id=part, amount_paise=amount // 3,
                                      source="webhook", **common))
    await apply(pool, RefundProcessed(refund_id=part, amount_paise=amount // 3,
                                      source="reconcile", **common))
    assert await revoked(pool, booking_id) == [False, False]  # partial: passes stay good

    lost = await pool.fetchval(
        "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, next_check_at)"
        " VALUES ($1, $2, 100, 'admin', NULL) RETURNING id", payment_id, booking_id)
    await pool.execute("UPDATE refunds SET status = 'failed' WHERE id = $1", lost)
    await apply(pool, RefundFailed(refund_id=lost, amount_paise=100, error="x",
                                   source="webhook", **common))

    rest = await pool.fetchval(
        "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, status,"
        " next_check_at) VALUES ($1, $2, $3, 'admin', 'processed', NULL) RETURNING id",
        payment_id, booking_id, amount - amount // 3)
    await apply(pool, RefundProcessed(refund_id=rest, amount_paise=amount - amount // 3,
                                      source="webhook", **common))
    assert await revoked(pool, booking_id) == [True, True]

    kinds = [k for k, _ in await mails(pool, booking_id)]
    assert kinds == ["payment_confirmed", "refund_initiated", "refund_processed",
                     "refund_failed", "refund_processed"]


async def full_refund(pool, booking_id: int, status: str) -> int:
    """A refund of all of the booking's captured payment, as a record only (no
    next_check_at: the session stack's refund worker never submits it)."""
    return await pool.fetchval(
        "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, status, next_check_at)"
        " SELECT id, booking_id, amount_paise, 'admin', $2, NULL FROM payments"
        " WHERE booking_id = $1 AND status = 'captured' RETURNING id", booking_id, status)


async def test_a_capture_heard_after_its_money_went_back_confirms_with_no_live_pass_nor_mail(
        pool):
    """payment.captured held back (a backlog, the dead-letter queue) until after a full
    refund: the booking is confirmed, as the capture happened, but nothing admits anyone
    and no "confirmed" mail follows the refund's."""
    booking, captured = await captured_on_record(pool)
    n = booking["booking_id"]
    await full_refund(pool, n, "processed")

    assert await apply(pool, captured)

    assert await pool.fetchval("SELECT status FROM bookings WHERE id = $1", n) == "confirmed"
    assert await revoked(pool, n) == [True, True]
    assert [kind for kind, _ in await mails(pool, n)] == []


async def test_a_capture_heard_while_a_full_refund_is_in_progress_confirms_and_mails(pool):
    """The refund may still fail, and a revoked pass is never given back: a late capture
    revokes nothing for a refund Razorpay has not processed, and the customer who keeps
    their money's worth keeps passes that admit and gets the confirmation."""
    booking, captured = await captured_on_record(pool)
    n = booking["booking_id"]
    refund = await full_refund(pool, n, "requested")

    assert await apply(pool, captured)
    await pool.execute("UPDATE refunds SET status = 'failed' WHERE id = $1", refund)

    assert await pool.fetchval("SELECT status FROM bookings WHERE id = $1", n) == "confirmed"
    assert await revoked(pool, n) == [False, False]
    assert [kind for kind, _ in await mails(pool, n)] == ["payment_confirmed"]
