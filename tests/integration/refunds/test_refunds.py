"""Refunds against the real database and the sandbox, through the official SDK: the row
before the call, a lost answer found again, the database's cap, idempotency keys, races."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from ops.cli import refunds_needed
from order_service import cancellations, idempotency
from order_service import handlers as orders
from order_service.refund_worker import refund_pass
from shared.http import HttpError
from shared.payments import record_outcome
from shared.razorpay_client import RazorpayRejected
from shared.razorpay_map import best_outcome
from shared.refund_state import RefundStatus
from shared.refunds import submit_refund
from tests.support.refunds import control, open_order, paid_booking, pay_and_record
from tests.support.webhooks import apply_webhook, webhook


async def refund_path(pool, booking_id) -> str:
    """Where the refund call goes (the payment is fetched first, at another path)."""
    payment_id = await pool.fetchval(
        "SELECT razorpay_payment_id FROM payments WHERE booking_id = $1 AND status = 'captured'",
        booking_id)
    return f"/v1/payments/{payment_id}/refund"


async def razorpay_refunds(pool, razorpay, booking_id) -> list[dict]:
    payment_id = await pool.fetchval(
        "SELECT razorpay_payment_id FROM payments WHERE booking_id = $1 AND status = 'captured'",
        booking_id)
    return await razorpay.fetch_payment_refunds(payment_id)


async def test_partial_then_full_refund_and_payment_status(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)

    first = await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=50_000)
    assert (first["refund"]["amount"], first["refund"]["status"]) == (500.0, "pending")
    assert first["remaining"] == 1000.0
    assert (await orders.payment_status(orders.status_reads(pool), booking_id))["status"] == "paid"

    rest = await cancellations.refund_booking(pool, razorpay, booking_id)
    assert (rest["refund"]["amount"], rest["remaining"]) == (1000.0, 0)
    status = await orders.payment_status(orders.status_reads(pool), booking_id)
    assert (status["status"], status["paid"]) == ("refunded", False)
    assert sorted(r["amount"] for r in await razorpay_refunds(pool, razorpay, booking_id)) == [
        50_000, 100_000]

    with pytest.raises(HttpError) as nothing:
        await cancellations.refund_booking(pool, razorpay, booking_id)
    assert nothing.value.status == 409


async def test_refusals(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    with pytest.raises(HttpError) as over:
        await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=150_001)
    assert over.value.status == 400
    unpaid, _ = await open_order(pool, razorpay)
    with pytest.raises(HttpError) as not_paid:
        await cancellations.refund_booking(pool, razorpay, unpaid)
    assert not_paid.value.status == 409
    with pytest.raises(HttpError) as unknown:
        await cancellations.refund_booking(pool, razorpay, 2**62)
    assert unknown.value.status == 404


async def test_row_before_the_call_and_a_lost_answer_found_again(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    # Razorpay makes the refund but answers after our timeout: the answer is lost.
    await control(settings, "/sandbox/faults", {
        "mode": "slow", "delay_seconds": settings.razorpay_timeout_seconds + 1.5,
        "path_prefix": await refund_path(pool, booking_id), "count": 1})

    answer = await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=30_000)

    assert answer["refund"]["status"] == "requested"  # written before the call, kept
    row = await pool.fetchrow("SELECT * FROM refunds WHERE id = $1", answer["refund"]["id"])
    assert (row["attempts"], row["razorpay_refund_id"]) == (1, None)
    await asyncio.sleep(2)  # Razorpay finishes the refund we stopped waiting for
    assert len(await razorpay_refunds(pool, razorpay, booking_id)) == 1

    await pool.execute("UPDATE refunds SET next_check_at = now() WHERE id = $1", row["id"])
    after = await submit_refund(pool, razorpay, row["id"])

    assert after["status"] == "pending" and after["razorpay_refund_id"].startswith("rfnd_")
    at_razorpay = await razorpay_refunds(pool, razorpay, booking_id)
    assert [r["id"] for r in at_razorpay] == [after["razorpay_refund_id"]]  # not twice


async def test_a_refused_retry_after_a_lost_answer_is_looked_for_again_not_failed(
        pool, razorpay, settings):
    """Razorpay makes the refund but its answer is lost; the retry is refused (a repeat of
    a call it is still at work on). The refund stays requested, so the next look finds
    Razorpay's refund and its refund.processed is recorded: our books say refunded."""
    booking_id = await paid_booking(pool, razorpay, settings)
    path = await refund_path(pool, booking_id)
    await control(settings, "/sandbox/faults", {
        "mode": "slow", "delay_seconds": settings.razorpay_timeout_seconds + 1.5,
        "path_prefix": path, "count": 1})
    refund_id = (await cancellations.refund_booking(pool, razorpay, booking_id))["refund"]["id"]
    await asyncio.sleep(2)  # Razorpay finishes the refund we stopped waiting for
    [made] = await razorpay_refunds(pool, razorpay, booking_id)

    await control(settings, "/sandbox/faults", {"mode": "error_400", "path_prefix": path,
                                                "count": 1})
    await pool.execute("UPDATE refunds SET next_check_at = now() WHERE id = $1", refund_id)
    refused = await submit_refund(pool, razorpay, refund_id)
    assert (refused["status"], refused["attempts"]) == ("requested", 2)

    await pool.execute("UPDATE refunds SET next_check_at = now() WHERE id = $1", refund_id)
    found = await submit_refund(pool, razorpay, refund_id)
    assert (found["status"], found["razorpay_refund_id"]) == ("pending", made["id"])
    payment = await razorpay.fetch_payment(made["payment_id"])
    assert await apply_webhook(pool, f"id:evt_{made['id']}", webhook(
        "refund.processed", payment, {**made, "status": "processed"})) == "applied"
    assert await pool.fetchval("SELECT status FROM refunds WHERE id = $1", refund_id) == (
        "processed")
    assert await pool.fetchval("SELECT refunded_paise FROM payments WHERE booking_id = $1"
                               " AND status = 'captured'", booking_id) == 150_000
    assert [r["id"] for r in await razorpay_refunds(pool, razorpay, booking_id)] == [made["id"]]


async def test_a_retry_refused_after_razorpay_had_time_to_list_the_refund_fails(
        pool, razorpay, settings):
    """The first call never reached Razorpay; every retry is refused. Once Razorpay has had
    time to list a refund an earlier call made, and lists none, the refusal is believed."""
    booking_id = await paid_booking(pool, razorpay, settings)
    path = await refund_path(pool, booking_id)
    await control(settings, "/sandbox/faults", {"mode": "error_500", "path_prefix": path,
                                                "count": 1})
    refund_id = (await cancellations.refund_booking(pool, razorpay, booking_id))["refund"]["id"]
    try:
        await control(settings, "/sandbox/faults", {"mode": "error_400", "path_prefix": path})
        await pool.execute("UPDATE refunds SET next_check_at = now() WHERE id = $1", refund_id)
        assert (await submit_refund(pool, razorpay, refund_id))["status"] == "requested"
        await pool.execute("UPDATE refunds SET next_check_at = now(),"
                           " created_at = now() - interval '1 day' WHERE id = $1", refund_id)
        assert (await submit_refund(pool, razorpay, refund_id))["status"] == "failed"
    finally:
        await control(settings, "/sandbox/faults", {"mode": "none"})
    assert await razorpay_refunds(pool, razorpay, booking_id) == []
    assert await pool.fetchval("SELECT refunded_paise FROM payments WHERE booking_id = $1"
                               " AND status = 'captured'", booking_id) == 0


async def test_unreachable_razorpay_leaves_it_requested_for_the_worker(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    await control(settings, "/sandbox/faults", {
        "mode": "error_500", "path_prefix": await refund_path(pool, booking_id), "count": 1})
    answer = await cancellations.refund_booking(pool, razorpay, booking_id)
    assert answer["refund"]["status"] == "requested"

    await pool.execute("UPDATE refunds SET next_check_at = now() WHERE id = $1",
                       answer["refund"]["id"])
    await refund_pass(pool, razorpay)
    status = await pool.fetchval("SELECT status FROM refunds WHERE id = $1",
                                 answer["refund"]["id"])
    assert status == "pending"
    assert len(await razorpay_refunds(pool, razorpay, booking_id)) == 1


async def test_the_database_caps_refunds_at_the_captured_amount(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings, 10_000)
    payment = await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    # no next_check_at: the session stack's refund worker leaves these rows alone
    insert = ("INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, next_check_at)"
              " VALUES ($1, $2, $3, 'admin', NULL) RETURNING id")

    first = await pool.fetchval(insert, payment["id"], booking_id, 6_000)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.fetchval(insert, payment["id"], booking_id, 4_001)
    await pool.fetchval(insert, payment["id"], booking_id, 4_000)
    # a failed refund frees its amount again; nothing moves backwards
    await pool.execute("UPDATE refunds SET status = 'failed' WHERE id = $1", first)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE refunds SET status = 'pending' WHERE id = $1", first)
    assert await pool.fetchval("SELECT refunded_paise FROM payments WHERE id = $1",
                               payment["id"]) == 4_000
    unpaid, _ = await open_order(pool, razorpay)
    open_payment = await pool.fetchval("SELECT id FROM payments WHERE booking_id = $1", unpaid)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.fetchval(insert, open_payment, unpaid, 100)


async def test_only_a_failed_refund_frees_its_amount(pool, razorpay, settings):
    """Every refund not failed holds its amount against the payment: the database's running
    total, walked through each status a refund can end up in."""
    booking_id = await paid_booking(pool, razorpay, settings, 10_000)
    payment_id = await pool.fetchval(
        "SELECT id FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    refunded = "SELECT refunded_paise FROM payments WHERE id = $1"
    # no next_check_at: the session stack's refund worker leaves these rows alone
    insert = ("INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, next_check_at)"
              " VALUES ($1, $2, 1000, 'admin', NULL) RETURNING id")
    freed = []
    for status in RefundStatus:
        before = await pool.fetchval(refunded, payment_id)
        refund_id = await pool.fetchval(insert, payment_id, booking_id)
        await pool.execute("UPDATE refunds SET status = $2 WHERE id = $1", refund_id, status)
        if await pool.fetchval(refunded, payment_id) == before:
            freed.append(status)
    assert freed == [RefundStatus.FAILED]


async def test_racing_refund_requests_never_exceed_the_captured_amount(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings, 100_000)

    results = await asyncio.gather(*(
        cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=30_000)
        for _ in range(8)), return_exceptions=True)

    done = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, HttpError)]
    assert len(done) == 3 and len(refused) == 5, results
    assert {r.status for r in refused} == {400}
    assert sum(r["amount"] for r in await razorpay_refunds(pool, razorpay, booking_id)) == 90_000
    assert await pool.fetchval(
        "SELECT refunded_paise FROM payments WHERE booking_id = $1 AND status = 'captured'",
        booking_id) == 90_000


async def test_racing_raw_inserts_are_capped_by_the_database_alone(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings, 10_000)
    payment_id = await pool.fetchval(
        "SELECT id FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)

    async def insert():
        async with pool.acquire() as conn:
            return await conn.fetchval(
                "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, next_check_at)"
                " VALUES ($1, $2, 3000, 'admin', NULL) RETURNING id", payment_id, booking_id)

    results = await asyncio.gather(*(insert() for _ in range(6)), return_exceptions=True)
    assert sum(isinstance(r, int) for r in results) == 3
    assert all(isinstance(r, asyncpg.CheckViolationError) for r in results
               if not isinstance(r, int))


async def test_idempotency_key_gives_the_first_answer_and_refuses_another_body(
    pool, razorpay, settings
):
    booking_id = await paid_booking(pool, razorpay, settings)
    key = f"key-{booking_id}"
    calls = 0

    async def work():
        nonlocal calls
        calls += 1
        return await cancellations.refund_booking(
            pool, razorpay, booking_id, amount_paise=10_000, idempotency_key=key)

    digest = idempotency.request_hash("refund", {"booking_id": booking_id, "amount": 10_000})
    answers = await asyncio.gather(*(
        idempotency.run_once(pool, "refund", key, digest, work) for _ in range(5)),
        return_exceptions=True)
    ok = [a for a in answers if isinstance(a, tuple)]
    assert ok and all(a == ok[0] for a in ok)
    assert all(a.status == 409 for a in answers if isinstance(a, HttpError))
    again = await idempotency.run_once(pool, "refund", key, digest, work)
    assert again == ok[0] and calls == 1
    assert len(await razorpay_refunds(pool, razorpay, booking_id)) == 1

    other = idempotency.request_hash("refund", {"booking_id": booking_id, "amount": 20_000})
    with pytest.raises(HttpError) as reused:
        await idempotency.run_once(pool, "refund", key, other, work)
    assert reused.value.status == 422


async def test_cancel_paid_refunds_all_but_the_fee_once(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=20_000)

    first = await cancellations.cancel_booking(pool, razorpay, booking_id, fee_paise=10_000,
                                               reason="plans changed")
    again = await cancellations.cancel_booking(pool, razorpay, booking_id, fee_paise=99_000)

    assert first == again
    assert (first["status"], first["paid"], first["cancellation_fee"]) == ("cancelled", True, 100)
    assert first["refund"]["amount"] == 1200.0  # 1500 - 200 refunded before - 100 fee
    assert sorted(r["amount"] for r in await razorpay_refunds(pool, razorpay, booking_id)) == [
        20_000, 120_000]
    event = await pool.fetchval(
        "SELECT body->'data' FROM outbox WHERE routing_key = 'booking.cancelled'"
        " AND (body->'data'->>'booking_id')::bigint = $1", booking_id)
    assert event["paid"] is True and event["refund_paise"] == 120_000


class RefusingRefunds:
    """Our Razorpay client, but Razorpay refuses every refund at once (as it does one for
    more than it would still refund)."""

    def __init__(self, razorpay):
        self._razorpay = razorpay

    def __getattr__(self, name):
        return getattr(self._razorpay, name)

    async def refund_payment(self, *args, **kwargs):
        raise RazorpayRejected("The refund amount provided is greater than amount captured")


async def test_a_refund_razorpay_refuses_at_once_is_answered_as_refused(
        pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    key = f"refused-{booking_id}"
    refusing = RefusingRefunds(razorpay)
    digest = idempotency.request_hash("refund", {"booking_id": booking_id, "amount": None})

    def work():
        return cancellations.refund_booking(pool, refusing, booking_id, idempotency_key=key)

    for _ in range(2):  # the retry with the key: the same refusal, and no second refund
        with pytest.raises(HttpError) as refused:
            await idempotency.run_once(pool, "refund", key, digest, work)
        assert (refused.value.status, refused.value.message) == (
            502, cancellations.REFUND_REFUSED)
    assert await refunds_of(pool, booking_id) == [("admin", 150_000, "failed")]
    again = await cancellations.refund_booking(pool, razorpay, booking_id)  # another key
    assert (again["refund"]["amount"], again["remaining"]) == (1500.0, 0)


async def cancelled_with_a_failed_refund(pool, razorpay, settings) -> int:
    """A ₹1500 booking cancelled with a ₹200 fee, whose ₹1300 refund Razorpay failed."""
    booking_id = await paid_booking(pool, razorpay, settings)
    payment_id = await pool.fetchval(
        "SELECT razorpay_payment_id FROM payments WHERE booking_id = $1 AND status = 'captured'",
        booking_id)
    before = await control(settings, "/sandbox/refunds", {})
    await control(settings, "/sandbox/refunds", {"outcome": "failed", "delay_seconds": 0})
    try:
        await cancellations.cancel_booking(pool, razorpay, booking_id, fee_paise=20_000)
        for _ in range(100):
            if all(r["status"] != "pending"
                   for r in await razorpay.fetch_payment_refunds(payment_id)):
                break
            await asyncio.sleep(0.05)
        await pool.execute("UPDATE refunds SET next_check_at = now() WHERE status = 'pending'")
        await refund_pass(pool, razorpay)
    finally:
        await control(settings, "/sandbox/refunds", before)
    assert await refunds_of(pool, booking_id) == [("cancellation", 130_000, "failed")]
    return booking_id


async def refunds_of(pool, booking_id) -> list[tuple]:
    return [tuple(r) for r in await pool.fetch(
        "SELECT cause, amount_paise, status FROM refunds WHERE booking_id = $1 ORDER BY id",
        booking_id)]


async def needed(settings, booking_id) -> list[str]:
    return [n["why"] for n in (await refunds_needed(settings))["refunds_needed"]
            if n["booking_id"] == booking_id]


async def test_cancelling_again_after_a_failed_refund_refunds_what_it_owes_once(
        pool, razorpay, settings):
    booking_id = await cancelled_with_a_failed_refund(pool, razorpay, settings)
    assert await needed(settings, booking_id) == ["refund_failed", "cancelled_but_not_refunded"]

    again = await cancellations.cancel_booking(pool, razorpay, booking_id)
    assert (again["refund"]["amount"], again["refund"]["status"]) == (1300.0, "pending")
    assert again["cancellation_fee"] == 200
    assert await cancellations.cancel_booking(pool, razorpay, booking_id) == again
    assert await refunds_of(pool, booking_id) == [
        ("cancellation", 130_000, "failed"), ("cancellation", 130_000, "pending")]
    assert sorted(r["amount"] for r in await razorpay_refunds(pool, razorpay, booking_id)) == [
        130_000, 130_000]
    assert await needed(settings, booking_id) == []


async def test_refunding_a_cancelled_booking_keeps_its_fee(pool, razorpay, settings):
    booking_id = await cancelled_with_a_failed_refund(pool, razorpay, settings)

    answer = await cancellations.refund_booking(pool, razorpay, booking_id)
    assert answer["refund"]["amount"] == 1300.0
    assert await needed(settings, booking_id) == []
    with pytest.raises(HttpError) as nothing_left:
        await cancellations.refund_booking(pool, razorpay, booking_id)
    assert nothing_left.value.status == 409
    # an explicit amount may still give the fee back
    waived = await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=20_000)
    assert (waived["refund"]["amount"], waived["remaining"]) == (200.0, 0)


async def test_a_chargeback_settles_what_a_failed_refund_owed(pool, razorpay, settings):
    booking_id = await cancelled_with_a_failed_refund(pool, razorpay, settings)
    payment_id = await pool.fetchval(
        "SELECT razorpay_payment_id FROM payments WHERE booking_id = $1", booking_id)
    await pool.execute(
        "INSERT INTO disputes (razorpay_dispute_id, razorpay_payment_id, amount_paise, status,"
        " razorpay_updated_at) VALUES ($1, $2, 130000, 'lost', now())",
        f"disp_cb{booking_id}", payment_id)

    assert await needed(settings, booking_id) == []
    again = await cancellations.cancel_booking(pool, razorpay, booking_id)
    assert again["refund"]["status"] == "failed"  # the chargeback returned it: nothing to send


async def test_payment_captured_after_cancellation_is_refunded_once(pool, razorpay, settings):
    booking_id, order_id = await open_order(pool, razorpay)
    answer = await cancellations.cancel_booking(pool, razorpay, booking_id)
    assert (answer["paid"], answer["refund"]) == (False, None)
    with pytest.raises(HttpError) as blocked:  # no new order for a cancelled booking
        await orders.create_order(pool, razorpay, booking_id=booking_id,
                                  customer_id=await pool.fetchval(
                                      "SELECT customer_id FROM bookings WHERE id = $1",
                                      booking_id),
                                  amount_paise=150_000, reconcile_after=timedelta(hours=1))
    assert blocked.value.status == 404

    await pay_and_record(pool, razorpay, settings, order_id)  # paid anyway
    outcome = best_outcome(await razorpay.fetch_order_payments(order_id))
    async with pool.acquire() as conn, conn.transaction():  # reported again: no-op
        assert not (await record_outcome(conn, outcome, "webhook", None)).applied
    await refund_pass(pool, razorpay)
    await refund_pass(pool, razorpay)

    rows = await pool.fetch("SELECT * FROM refunds WHERE booking_id = $1", booking_id)
    assert [(r["cause"], r["amount_paise"], r["status"]) for r in rows] == [
        ("captured_after_cancellation", 150_000, "pending")]
    assert [r["amount"] for r in await razorpay_refunds(pool, razorpay, booking_id)] == [150_000]


async def test_refunds_are_counted_by_outcome(pool, razorpay, settings):
    from shared.metrics import REFUNDS

    def count(outcome):
        return REFUNDS.labels(outcome)._value.get()

    before = {o: count(o) for o in ("requested", "processed", "failed")}
    booking_id = await paid_booking(pool, razorpay, settings)
    answer = await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=10_000)
    refund = await pool.fetchrow("SELECT * FROM refunds WHERE id = $1", answer["refund"]["id"])
    from shared.refund_state import RefundOutcome, RefundStatus
    from shared.refunds import record_refund_outcome

    async with pool.acquire() as conn, conn.transaction():
        await record_refund_outcome(conn, RefundOutcome(
            refund["id"], refund["razorpay_refund_id"], RefundStatus.PROCESSED, 10_000),
            "webhook", None)
    assert count("requested") == before["requested"] + 1
    assert count("processed") == before["processed"] + 1
    assert count("failed") == before["failed"]
