"""The money after capture against the real database and the sandbox, through the official
SDK: a second capture refunded once (redelivered, racing verify), refunds made in Razorpay's
dashboard counted once, and a lost one never over-refunded."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from notifier.mail_sender import BOOKING_FOR_MAIL
from notifier.mail_templates import WORDING
from ops.cli import refunds_needed
from order_service import cancellations
from order_service import handlers as orders
from order_service.reconciler import CLAIM_SECOND_LOOKS, look_again, reconcile
from order_service.refund_worker import refund_pass
from order_service.second_charges import refund_second_charges
from razorpay_sandbox.checkout import payment_signature
from shared.events import Envelope, RefundCreated
from shared.http import HttpError
from shared.payments import record_outcome
from shared.razorpay_map import outcome_from_payment
from testkit.infra import eventually
from tests.support.notifier import apply_event
from tests.support.refunds import control, open_order, paid_booking
from tests.support.webhooks import apply_webhook, webhook
from verification_service.handlers import VerifyRequest, verify_payment


def key() -> str:
    return "id:" + uuid.uuid4().hex


async def booking_payment(pool, booking_id):
    return await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)


async def refunds_of(pool, booking_id):
    return await pool.fetch(
        "SELECT * FROM refunds WHERE booking_id = $1 ORDER BY id", booking_id)


async def second_capture(settings, order_id) -> dict:
    return await control(settings, f"/sandbox/orders/{order_id}/second-capture",
                         {"webhooks": {"enabled": False}})


async def send_due_refunds(pool, razorpay):
    await pool.execute("UPDATE refunds SET next_check_at = now() WHERE status = 'requested'")
    await refund_pass(pool, razorpay)


async def until_settled_at_razorpay(razorpay, payment_id: str) -> None:
    for _ in range(100):
        if all(r["status"] != "pending" for r in await razorpay.fetch_payment_refunds(payment_id)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the sandbox did not settle the refund")


async def test_a_second_capture_is_refunded_once_under_redelivery(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    first = await booking_payment(pool, booking_id)
    second = await second_capture(settings, first["razorpay_order_id"])

    delivery = webhook("payment.captured", second)
    first_key = key()
    outcomes = [await apply_webhook(pool, first_key, delivery, None),
                await apply_webhook(pool, first_key, delivery, None),  # redelivered
                await apply_webhook(pool, key(), delivery, None)]  # a second event id
    assert outcomes == ["conflict", "duplicate", "conflict"]

    [refund] = await refunds_of(pool, booking_id)
    assert (refund["cause"], refund["amount_paise"], refund["status"]) == (
        "duplicate_payment", 150_000, "requested")
    assert refund["razorpay_payment_id"] == second["id"]
    await send_due_refunds(pool, razorpay)
    await send_due_refunds(pool, razorpay)
    at_razorpay = await razorpay.fetch_payment_refunds(second["id"])
    assert [r["amount"] for r in at_razorpay] == [150_000]
    assert await razorpay.fetch_payment_refunds(first["razorpay_payment_id"]) == []
    # the booking keeps its first payment, untouched, and stays paid
    status = await orders.payment_status(orders.status_reads(pool), booking_id)
    assert (status["status"], status["paid"]) == ("paid", True)
    created = await pool.fetch(
        "SELECT body->'data'->>'cause' AS cause FROM outbox WHERE routing_key = 'refund.created'"
        " AND (body->'data'->>'booking_id')::bigint = $1", booking_id)
    assert [r["cause"] for r in created] == ["duplicate_payment"]  # the notifier's mail


async def test_verify_and_webhook_racing_make_one_refund(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    first = await booking_payment(pool, booking_id)
    order_id = first["razorpay_order_id"]
    second = await second_capture(settings, order_id)
    request = VerifyRequest(order_id, second["id"],
                            payment_signature(order_id, second["id"],
                                              settings.razorpay_key_secret),
                            booking_id, first["customer_id"])

    results = await asyncio.gather(
        verify_payment(pool, razorpay, settings, request),
        apply_webhook(pool, key(), webhook("payment.captured", second), None),
        verify_payment(pool, razorpay, settings, request),
        return_exceptions=True)

    assert [r.status for r in results if isinstance(r, HttpError)] == [409, 409]  # the seed's
    assert "conflict" in results
    await send_due_refunds(pool, razorpay)
    rows = await refunds_of(pool, booking_id)
    assert [(r["cause"], r["amount_paise"]) for r in rows] == [("duplicate_payment", 150_000)]
    assert len(await razorpay.fetch_payment_refunds(second["id"])) == 1


async def test_a_verify_that_waited_for_another_payments_capture_refunds_its_own(
        pool, razorpay, settings):
    """Verify of payment B reads the order before payment A's capture of it commits, then
    waits for it: B is a second charge, refunded in full (the seed's 409 answers)."""
    booking_id, order_id = await open_order(pool, razorpay)
    await control(settings, f"/sandbox/orders/{order_id}/pay",
                  {"outcome": "captured", "webhooks": {"enabled": False}})
    [first] = await razorpay.fetch_order_payments(order_id)
    second = await second_capture(settings, order_id)
    customer_id = await pool.fetchval("SELECT customer_id FROM bookings WHERE id = $1",
                                      booking_id)
    request = VerifyRequest(order_id, second["id"], payment_signature(
        order_id, second["id"], settings.razorpay_key_secret), booking_id, customer_id)
    async with pool.acquire() as conn:
        async with conn.transaction():  # A's webhook, not committed yet
            assert (await record_outcome(conn, outcome_from_payment(first), "webhook",
                                         None)).applied
            verify = asyncio.create_task(verify_payment(pool, razorpay, settings, request))

            async def verify_waits_on_a_lock():
                return await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'")

            await eventually(verify_waits_on_a_lock)
    with pytest.raises(HttpError) as refused:
        await verify
    assert refused.value.status == 409
    assert (await booking_payment(pool, booking_id))["razorpay_payment_id"] == first["id"]
    [refund] = await refunds_of(pool, booking_id)
    assert (refund["cause"], refund["razorpay_payment_id"], refund["status"]) == (
        "duplicate_payment", second["id"], "pending")  # sent by verify itself
    assert [r["amount"] for r in await razorpay.fetch_payment_refunds(second["id"])] == [
        150_000]


async def test_a_dashboard_refund_is_counted_once(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    payment = await booking_payment(pool, booking_id)
    refund = await control(settings,
                           f"/sandbox/payments/{payment['razorpay_payment_id']}/dashboard-refund",
                           {"webhooks": {"enabled": False}})
    entity = await razorpay.fetch_payment(payment["razorpay_payment_id"])
    created, processed = key(), key()
    processed_refund = {**refund, "status": "processed"}

    outcomes = [
        await apply_webhook(pool, created, webhook("refund.created", entity, refund), None),
        await apply_webhook(pool, processed, webhook("refund.processed", entity,
                                                     processed_refund), None),
        await apply_webhook(pool, processed, webhook("refund.processed", entity,
                                                     processed_refund), None),
        await apply_webhook(pool, key(), webhook("refund.processed", entity,
                                                 processed_refund), None),
    ]

    assert outcomes == ["applied", "applied", "duplicate", "stale"]
    [row] = await refunds_of(pool, booking_id)
    assert (row["cause"], row["status"], row["amount_paise"], row["razorpay_refund_id"]) == (
        "outside", "processed", 150_000, refund["id"])
    assert (await booking_payment(pool, booking_id))["refunded_paise"] == 150_000
    status = await orders.payment_status(orders.status_reads(pool), booking_id)
    assert (status["status"], status["paid"]) == ("refunded", False)


async def test_a_lost_dashboard_refund_is_never_refunded_again(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    payment = await booking_payment(pool, booking_id)
    await control(settings,
                  f"/sandbox/payments/{payment['razorpay_payment_id']}/dashboard-refund",
                  {"amount": 100_000, "webhooks": {"enabled": False}})  # its webhooks lost

    with pytest.raises(HttpError) as refused:
        await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=100_000)
    assert refused.value.status == 400
    assert "more than remains to refund (500" in refused.value.message

    rows = await refunds_of(pool, booking_id)
    assert [(r["cause"], r["amount_paise"]) for r in rows] == [("outside", 100_000)]
    assert not await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE routing_key = 'refund.failed'"
        " AND (body->'data'->>'booking_id')::bigint = $1", booking_id)
    rest = await cancellations.refund_booking(pool, razorpay, booking_id)  # what remains
    assert (rest["refund"]["amount"], rest["remaining"]) == (500.0, 0)
    at_razorpay = await razorpay.fetch_payment_refunds(payment["razorpay_payment_id"])
    assert sorted(r["amount"] for r in at_razorpay) == [50_000, 100_000]


async def assert_refunded_once_looked_at(pool, booking_id, kept, second) -> None:
    """The second capture refunded, and the kept payment's second look done."""
    rows = await refunds_of(pool, booking_id)
    assert [(r["cause"], r["razorpay_payment_id"]) for r in rows] == [
        ("duplicate_payment", second["id"])]
    assert not await pool.fetchval("SELECT second_look_due FROM payments WHERE id = $1",
                                   kept["id"])


async def test_a_second_capture_nobody_reported_is_found_by_the_second_look(
        pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)  # captured and recorded
    kept = await booking_payment(pool, booking_id)
    assert await pool.fetchval("SELECT second_look_due FROM payments WHERE id = $1", kept["id"])
    second = await second_capture(settings, kept["razorpay_order_id"])  # every webhook lost

    not_yet = settings.model_copy(update={"reconcile_first_delay_seconds": 3600})
    assert await look_again(pool, razorpay, not_yet) == 0  # too soon after the capture
    assert await refunds_of(pool, booking_id) == []

    now = settings.model_copy(update={"reconcile_first_delay_seconds": 0})
    assert await look_again(pool, razorpay, now) == 1
    await assert_refunded_once_looked_at(pool, booking_id, kept, second)
    # one look per capture: the order is not asked about again
    assert await look_again(pool, razorpay, now) == 0
    assert len(await refunds_of(pool, booking_id)) == 1


async def test_a_second_look_claimed_by_a_replica_that_stopped_is_looked_at_again(
        pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    kept = await booking_payment(pool, booking_id)
    second = await second_capture(settings, kept["razorpay_order_id"])  # every webhook lost
    # another replica claims the look and stops before it records anything
    claimed = await pool.fetch(CLAIM_SECOND_LOOKS, 50, timedelta(0), timedelta(minutes=2))
    assert kept["razorpay_order_id"] in [r["razorpay_order_id"] for r in claimed]

    now = settings.model_copy(update={"reconcile_first_delay_seconds": 0})
    assert await look_again(pool, razorpay, now) == 0  # its lease still holds
    await pool.execute("UPDATE payments SET second_look_leased_until = now() - interval '1 s'"
                       " WHERE id = $1", kept["id"])  # the lease has run out
    assert await look_again(pool, razorpay, now) == 1
    await assert_refunded_once_looked_at(pool, booking_id, kept, second)


async def test_the_reconciler_refunds_a_second_capture_it_finds(pool, razorpay, settings):
    booking_id, order_id = await open_order(pool, razorpay)
    first = await control(settings, f"/sandbox/orders/{order_id}/pay",
                          {"webhooks": {"enabled": False}})
    second = await second_capture(settings, order_id)  # both before we heard of either

    await reconcile(pool, razorpay, settings, everything=True)
    await reconcile(pool, razorpay, settings, everything=True)

    both = {first["razorpay_payment_id"], second["id"]}
    kept = (await booking_payment(pool, booking_id))["razorpay_payment_id"]
    assert kept in both
    rows = await refunds_of(pool, booking_id)
    assert [(r["cause"], r["razorpay_payment_id"]) for r in rows] == [
        ("duplicate_payment", (both - {kept}).pop())]
    found_by = await pool.fetchval(
        "SELECT found_by FROM duplicate_payments WHERE booking_id = $1", booking_id)
    assert found_by == "reconcile"


async def second_capture_whose_refund_failed(pool, razorpay, settings):
    """A paid booking charged a second time, whose automatic refund of that charge Razorpay
    failed: (booking id, kept payment row, second payment entity)."""
    booking_id = await paid_booking(pool, razorpay, settings)
    kept = await booking_payment(pool, booking_id)
    second = await second_capture(settings, kept["razorpay_order_id"])
    assert await apply_webhook(pool, key(), webhook("payment.captured", second), None) == (
        "conflict")
    before = await control(settings, "/sandbox/refunds", {})
    await control(settings, "/sandbox/refunds", {"outcome": "failed", "delay_seconds": 0})
    try:
        await send_due_refunds(pool, razorpay)
        await until_settled_at_razorpay(razorpay, second["id"])
        await pool.execute("UPDATE refunds SET next_check_at = now() WHERE status = 'pending'")
        await refund_pass(pool, razorpay)
    finally:
        await control(settings, "/sandbox/refunds", before)
    [ours] = await refunds_of(pool, booking_id)
    assert (ours["cause"], ours["status"]) == ("duplicate_payment", "failed")
    return booking_id, kept, second


async def test_a_dashboard_refund_of_a_second_capture_counts_against_it(
        pool, razorpay, settings):
    booking_id, kept, second = await second_capture_whose_refund_failed(
        pool, razorpay, settings)
    # support refunds the second charge in Razorpay's dashboard
    refund = await control(settings, f"/sandbox/payments/{second['id']}/dashboard-refund",
                           {"webhooks": {"enabled": False}})
    entity = await razorpay.fetch_payment(second["id"])

    outcome = await apply_webhook(pool, key(), webhook(
        "refund.processed", entity, {**refund, "status": "processed"}), None)

    assert outcome == "applied"
    outside = (await refunds_of(pool, booking_id))[-1]
    duplicate = await pool.fetchrow("SELECT * FROM duplicate_payments WHERE booking_id = $1",
                                    booking_id)
    assert (outside["cause"], outside["status"], outside["duplicate_payment_id"]) == (
        "outside", "processed", duplicate["id"])
    assert duplicate["refunded_paise"] == 150_000
    # the booking keeps its first payment, unrefunded, and stays paid
    assert (await booking_payment(pool, booking_id))["refunded_paise"] == 0
    status = await orders.payment_status(orders.status_reads(pool), booking_id)
    assert (status["status"], status["paid"]) == ("paid", True)


async def paid_at_an_old_price(pool, razorpay, settings) -> dict:
    """A booking whose ₹1,500 order was superseded when its price became ₹1,800, and the old
    order paid all the same (a Checkout left open in another tab)."""
    booking_id, old_order = await open_order(pool, razorpay, 150_000)
    customer_id = await pool.fetchval("SELECT customer_id FROM bookings WHERE id = $1",
                                      booking_id)
    await pool.execute("UPDATE bookings SET amount_paise = 180000 WHERE id = $1", booking_id)
    new = await orders.create_order(pool, razorpay, booking_id=booking_id,
                                    customer_id=customer_id, amount_paise=180_000,
                                    reconcile_after=timedelta(hours=1))
    paid = await control(settings, f"/sandbox/orders/{old_order}/pay",
                         {"webhooks": {"enabled": False}})
    return {"booking_id": booking_id, "customer_id": customer_id, "old_order": old_order,
            "new_order": new.order_id, "payment_id": paid["razorpay_payment_id"]}


async def assert_refunded_not_kept(pool, old: dict) -> None:
    rows = await refunds_of(pool, old["booking_id"])
    assert [(r["cause"], r["amount_paise"], r["razorpay_payment_id"]) for r in rows] == [
        ("duplicate_payment", 150_000, old["payment_id"])]
    assert rows[0]["reason"] == "paid on an order for an earlier price: refunded"
    status = await orders.payment_status(orders.status_reads(pool), old["booking_id"])
    assert status["paid"] is False
    assert await pool.fetchval("SELECT status FROM bookings WHERE id = $1",
                               old["booking_id"]) == "pending"
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE routing_key ="
                               " 'payment.captured' AND (body->'data'->>'booking_id')::bigint"
                               " = $1", old["booking_id"]) == 0


def verify_request(settings, old: dict, order_id: str, payment_id: str) -> VerifyRequest:
    return VerifyRequest(order_id, payment_id,
                         payment_signature(order_id, payment_id, settings.razorpay_key_secret),
                         old["booking_id"], old["customer_id"])


async def test_a_payment_for_an_old_price_is_refunded_and_the_current_one_confirms(
        pool, razorpay, settings):
    old = await paid_at_an_old_price(pool, razorpay, settings)
    request = verify_request(settings, old, old["old_order"], old["payment_id"])

    for _ in range(2):  # verified again: the same answer, one refund
        with pytest.raises(HttpError) as refused:
            await verify_payment(pool, razorpay, settings, request)
        assert (refused.value.status, refused.value.code) == (409, "order_superseded")
        assert "price changed" in refused.value.message
    await assert_refunded_not_kept(pool, old)
    assert [r["amount"] for r in await razorpay.fetch_payment_refunds(old["payment_id"])] == [
        150_000]

    # the customer pays the current price: the booking is paid with it
    paid = await control(settings, f"/sandbox/orders/{old['new_order']}/pay",
                         {"webhooks": {"enabled": False}})
    body = await verify_payment(pool, razorpay, settings, verify_request(
        settings, old, old["new_order"], paid["razorpay_payment_id"]))
    assert body["booking_details"]["amount"] == 1800.0
    status = await orders.payment_status(orders.status_reads(pool), old["booking_id"])
    assert (status["status"], status["paid"]) == ("paid", True)


@pytest.mark.parametrize("found_by", ["webhook", "reconcile"])
async def test_a_payment_for_an_old_price_reported_later_is_refunded_not_kept(
        pool, razorpay, settings, found_by):
    old = await paid_at_an_old_price(pool, razorpay, settings)
    if found_by == "webhook":
        entity = await razorpay.fetch_payment(old["payment_id"])
        delivery = webhook("payment.captured", entity)
        assert await apply_webhook(pool, key(), delivery, None) == "conflict"
        assert await apply_webhook(pool, key(), delivery, None) == "conflict"
    else:
        await reconcile(pool, razorpay, settings, everything=True)
        await reconcile(pool, razorpay, settings, everything=True)
    await assert_refunded_not_kept(pool, old)
    assert await pool.fetchval("SELECT found_by FROM duplicate_payments WHERE booking_id = $1",
                               old["booking_id"]) == found_by


@pytest.mark.parametrize("current_paid_first", [False, True])
async def test_the_customer_is_told_a_payment_for_an_old_price_goes_back(
        pool, razorpay, settings, current_paid_first):
    old = await paid_at_an_old_price(pool, razorpay, settings)
    if current_paid_first:  # the current order was paid and confirmed meanwhile
        paid = await control(settings, f"/sandbox/orders/{old['new_order']}/pay",
                             {"webhooks": {"enabled": False}})
        await verify_payment(pool, razorpay, settings, verify_request(
            settings, old, old["new_order"], paid["razorpay_payment_id"]))
    entity = await razorpay.fetch_payment(old["payment_id"])
    assert await apply_webhook(pool, key(), webhook("payment.captured", entity), None) == (
        "conflict")
    refund = (await refunds_of(pool, old["booking_id"]))[-1]
    envelope = Envelope.wrap(RefundCreated(
        refund_id=refund["id"], booking_id=old["booking_id"], customer_id=old["customer_id"],
        amount_paise=150_000, cause="duplicate_payment"), "test")
    async with pool.acquire() as conn:
        assert await apply_event(conn, envelope.event(), envelope.id, pass_secret="s")

    [mail] = await pool.fetch("SELECT kind, details FROM notifications WHERE booking_id = $1"
                              " AND kind LIKE '%refund%'", old["booking_id"])
    assert mail["kind"] == "old_price_payment_refund"
    booking = await pool.fetchrow(BOOKING_FOR_MAIL, old["booking_id"], False)
    subject, lines = WORDING[mail["kind"]](booking, mail["details"])
    text = " ".join(lines)
    assert "earlier price" in subject and "₹1,500.00" in text
    assert "please pay its current amount of ₹1,800.00" in text


async def test_a_second_charge_whose_refund_failed_is_listed_and_refunded_again(
        pool, razorpay, settings):
    booking_id, kept, second = await second_capture_whose_refund_failed(
        pool, razorpay, settings)
    needed = (await refunds_needed(settings))["refunds_needed"]
    assert [n["why"] for n in needed if n["booking_id"] == booking_id] == [
        "second_charge_refund_failed"]

    done = await refund_second_charges(pool, razorpay, booking_id)
    assert [r["amount"] for r in done["refunds"]] == [1500.0]
    with pytest.raises(HttpError) as again:  # nothing remains of it
        await refund_second_charges(pool, razorpay, booking_id)
    assert again.value.status == 409

    at_razorpay = await razorpay.fetch_payment_refunds(second["id"])
    assert sorted((r["amount"], r["status"]) for r in at_razorpay) == [
        (150_000, "failed"), (150_000, "pending")]
    assert await razorpay.fetch_payment_refunds(kept["razorpay_payment_id"]) == []
    assert (await booking_payment(pool, booking_id))["refunded_paise"] == 0
    needed = (await refunds_needed(settings))["refunds_needed"]
    assert [n for n in needed if n["booking_id"] == booking_id] == []
