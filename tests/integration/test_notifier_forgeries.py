"""The broker is not believed: events published to the real exchange by anyone who can
reach it, each claiming a fact the database does not hold, change nothing, mail nobody,
raise an ALARM and end in the dead-letter queue. Mails say what the database says, and a
forger reusing an event id cannot make the real event be dropped as a duplicate."""

from __future__ import annotations

import uuid

import pytest

from notifier.dlq import list_dead_letters
from shared.events import (
    BookingCancelled,
    Envelope,
    Event,
    OrderCreated,
    PassScanned,
    PaymentCaptured,
    PaymentFailed,
    RefundCreated,
    RefundFailed,
    RefundProcessed,
)
from testkit import infra
from testkit.factories import make_booking
from testkit.infra import eventually
from tests.support.notifier import Bus, Notifier, apply_event

SECRET = "forgery-pass-secret"


@pytest.fixture(scope="module")
def settings(base_settings):
    return base_settings.model_copy(update={
        "amqp_exchange": infra.unique_name("a6pay.events.forgeries"),
        "pass_signing_secret": SECRET,
        "notifier_delivery_limit": 2,
    })


@pytest.fixture(scope="module")
async def notifier(settings):
    running = await Notifier(settings).start()
    yield running
    await running.stop()


async def apply(pool, event: Event, event_id: uuid.UUID | None = None) -> bool:
    async with pool.acquire() as conn:
        return await apply_event(conn, event, event_id or uuid.uuid4(), pass_secret=SECRET)


async def paid_booking(pool, amount_paise: int = 150_000) -> dict:
    """A booking confirmed the way the notifier confirms one: a captured payment on
    record, its capture applied (passes and the confirmation mail written)."""
    booking = await make_booking(pool, amount_paise)
    n = booking["booking_id"]
    capture = PaymentCaptured(
        booking_id=n, customer_id=booking["customer_id"], order_id=f"order_Frg{n:011d}",
        payment_id=f"pay_Frg{n:013d}", amount_paise=amount_paise, source="webhook")
    booking["payment_id"] = await pool.fetchval(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)"
        " RETURNING id", n, capture.customer_id, capture.order_id, amount_paise,
        capture.payment_id)
    assert await apply(pool, capture)
    return booking


async def refund(pool, booking: dict, amount_paise: int, status: str = "processed") -> int:
    # A record only: no next_check_at, so no refund worker ever submits it.
    return await pool.fetchval(
        "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, status,"
        " next_check_at) VALUES ($1, $2, $3, 'admin', $4, NULL) RETURNING id",
        booking["payment_id"], booking["booking_id"], amount_paise, status)


async def order(pool, booking: dict, status: str = "created", reason: str | None = None) -> str:
    order_id = f"order_FrgOpen{booking['booking_id']:09d}"
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id, failure_reason)"
        " VALUES ($1,$2,$3,'r',$4,$5,$6,$7)",
        booking["booking_id"], booking["customer_id"], order_id, booking["amount_paise"],
        status, None if status == "created" else f"pay_FrgAttempt{booking['booking_id']:07d}",
        reason)
    return order_id


async def facts(pool, booking_id: int) -> dict:
    return {
        "status": await pool.fetchval("SELECT status FROM bookings WHERE id = $1", booking_id),
        "revoked": await pool.fetchval(
            "SELECT count(*) FROM passes WHERE booking_id = $1 AND revoked_at IS NOT NULL",
            booking_id),
        "mails": [(r["kind"], r["recipient"], r["details"]) for r in await pool.fetch(
            "SELECT kind, recipient, details FROM notifications WHERE booking_id = $1"
            " ORDER BY id", booking_id)],
    }


async def dead_letter(settings, message_id: str) -> dict | None:
    for entry in await list_dead_letters(settings, limit=1000):
        if entry["message_id"] == message_id:
            return entry
    return None


async def forgeries(pool) -> tuple[list[Event], list[int]]:
    """One forged event of each type the notifier consumes, and the bookings they name."""
    victim = await paid_booking(pool)  # confirmed, passes good, one mail
    other = await paid_booking(pool, 90_000)
    refunded_in_full = await refund(pool, other, 90_000)  # the other booking's, processed
    pending = await make_booking(pool)
    order_id = await order(pool, pending)  # an order nobody has paid or failed yet
    v, c = victim["booking_id"], victim["customer_id"]
    return [
        BookingCancelled(booking_id=v, customer_id=c, paid=True, refund_paise=150_000),
        RefundProcessed(refund_id=refunded_in_full, booking_id=v, customer_id=c,
                        amount_paise=90_000, source="webhook"),
        # the other booking's own refund, mailed to the victim's customer
        RefundProcessed(refund_id=refunded_in_full, booking_id=other["booking_id"],
                        customer_id=c, amount_paise=90_000, source="webhook"),
        RefundCreated(refund_id=refunded_in_full, booking_id=v, customer_id=c,
                      amount_paise=90_000, cause="admin"),
        RefundFailed(refund_id=refunded_in_full + 10**9, booking_id=v, customer_id=c,
                     amount_paise=90_000, error="x", source="webhook"),
        PaymentFailed(booking_id=pending["booking_id"], customer_id=pending["customer_id"],
                      order_id=order_id, payment_id="pay_FrgForged00001",
                      error_description="call +1 555 0100 to keep your booking",
                      source="webhook"),
        PassScanned(booking_id=v, customer_id=c, kind="collection", result="collected",
                    scanned_at="2025-12-28T10:00:00Z"),
        OrderCreated(booking_id=pending["booking_id"], customer_id=pending["customer_id"],
                     order_id="order_FrgNobodyMade1", amount_paise=pending["amount_paise"]),
    ], [v, other["booking_id"], pending["booking_id"]]


async def test_a_forged_event_of_each_type_changes_nothing_and_is_dead_lettered(
    pool, settings, notifier, caplog
):
    events, booking_ids = await forgeries(pool)
    before = {n: await facts(pool, n) for n in booking_ids}
    envelopes = [Envelope.wrap(event, "forger") for event in events]
    async with Bus(settings) as bus:
        for envelope in envelopes:
            await bus.publish(envelope)
    for envelope in envelopes:
        await notifier.settled(envelope.id, "refused")
        entry = await eventually(lambda e=envelope: dead_letter(settings, str(e.id)))
        assert (entry["reason"], entry["routing_key"]) == ("rejected", envelope.type)
        assert notifier.count(envelope.id, "requeued") == 0, envelope.type  # at once
        alarms = [r for r in caplog.records if getattr(r, "ctx", {}).get("event_id")
                  == str(envelope.id) and "ALARM" in r.getMessage()]
        assert alarms and alarms[0].levelname == "ERROR", envelope.type
    assert {n: await facts(pool, n) for n in booking_ids} == before
    assert not await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1)",
                                   [e.id for e in envelopes])


async def test_a_payment_failed_mail_says_what_the_database_says_once_per_attempt(pool):
    booking = await make_booking(pool)
    order_id = await order(pool, booking, "failed", "Card declined by the bank")
    common = dict(booking_id=booking["booking_id"], customer_id=booking["customer_id"],
                  order_id=order_id, source="webhook")
    assert await apply(pool, PaymentFailed(
        payment_id=f"pay_FrgAttempt{booking['booking_id']:07d}",
        error_description="Card declined by the bank", **common))
    for n in range(3):  # a sender choosing payment ids and reasons
        await apply(pool, PaymentFailed(payment_id=f"pay_FrgChosen{n:08d}",
                                        error_description="visit evil.example", **common))
    mails = (await facts(pool, booking["booking_id"]))["mails"]
    assert [(kind, details) for kind, _, details in mails] == [
        ("payment_failed", {"reason": "Card declined by the bank"})]


async def test_a_reused_event_id_does_not_drop_the_real_event(pool):
    """A forger copies a real event's id onto a fact the database holds (a cancellation
    already applied): the real event under that id still takes effect."""
    old = await paid_booking(pool)
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       old["booking_id"])
    assert await apply(pool, BookingCancelled(
        booking_id=old["booking_id"], customer_id=old["customer_id"], paid=True,
        refund_paise=0))
    real = await paid_booking(pool)
    await pool.execute("UPDATE bookings SET status = 'cancelled', cancellation_reason = $2"
                       " WHERE id = $1", real["booking_id"], "plans changed")
    event_id = uuid.uuid4()  # the real event's, seen on the exchange by the forger
    assert await apply(pool, BookingCancelled(
        booking_id=old["booking_id"], customer_id=old["customer_id"], paid=True,
        refund_paise=0), event_id)
    assert await apply(pool, BookingCancelled(
        booking_id=real["booking_id"], customer_id=real["customer_id"], paid=True,
        refund_paise=0, reason="plans changed"), event_id)
    now = await facts(pool, real["booking_id"])
    assert now["revoked"] == 2
    assert [kind for kind, _, _ in now["mails"]] == ["payment_confirmed", "booking_cancelled"]
    # and the same real event again is a duplicate
    assert not await apply(pool, BookingCancelled(
        booking_id=real["booking_id"], customer_id=real["customer_id"], paid=True,
        refund_paise=0, reason="plans changed"), event_id)


async def test_a_cancellation_mail_carries_the_databases_figures(pool):
    booking = await paid_booking(pool)
    await pool.execute(
        "UPDATE bookings SET status = 'cancelled', cancellation_reason = 'plans changed',"
        " cancellation_fee_paise = 50000 WHERE id = $1", booking["booking_id"])
    await pool.execute(
        "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, next_check_at)"
        " VALUES ($1, $2, 100000, 'cancellation', NULL)",
        booking["payment_id"], booking["booking_id"])
    assert await apply(pool, BookingCancelled(
        booking_id=booking["booking_id"], customer_id=booking["customer_id"], paid=True,
        refund_paise=149_999, cancellation_fee_paise=1, reason="<a href=evil>"))
    [(_, details)] = [(k, d) for k, _, d in (await facts(pool, booking["booking_id"]))["mails"]
                      if k == "booking_cancelled"]
    assert details == {"reason": "plans changed", "refund_amount_paise": 100_000,
                       "cancellation_fee_paise": 50_000}


async def test_only_processed_refunds_make_a_full_refund(pool):
    """A partial refund processed while the rest is still pending leaves the passes good,
    and they stay good when that pending refund fails."""
    booking = await paid_booking(pool)
    common = dict(booking_id=booking["booking_id"], customer_id=booking["customer_id"])
    part = await refund(pool, booking, 50_000)
    rest = await refund(pool, booking, 100_000, "pending")
    assert await apply(pool, RefundProcessed(refund_id=part, amount_paise=50_000,
                                             source="webhook", **common))
    assert (await facts(pool, booking["booking_id"]))["revoked"] == 0
    await pool.execute("UPDATE refunds SET status = 'failed' WHERE id = $1", rest)
    assert await apply(pool, RefundFailed(refund_id=rest, amount_paise=100_000, error="x",
                                          source="webhook", **common))
    assert (await facts(pool, booking["booking_id"]))["revoked"] == 0
    last = await refund(pool, booking, 100_000)
    assert await apply(pool, RefundProcessed(refund_id=last, amount_paise=100_000,
                                             source="webhook", **common))
    assert (await facts(pool, booking["booking_id"]))["revoked"] == 2


async def test_a_reused_event_id_does_not_drop_the_real_capture(pool):
    """The same for payment.captured, whose inbox row the confirmation statement writes."""
    old = await paid_booking(pool)
    fresh = await make_booking(pool)
    n = fresh["booking_id"]
    real = PaymentCaptured(booking_id=n, customer_id=fresh["customer_id"],
                           order_id=f"order_Frg{n:011d}", payment_id=f"pay_Frg{n:013d}",
                           amount_paise=fresh["amount_paise"], source="webhook")
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id) VALUES ($1,$2,$3,'r',$4,'captured',$5)",
        n, real.customer_id, real.order_id, real.amount_paise, real.payment_id)
    replayed = PaymentCaptured(
        booking_id=old["booking_id"], customer_id=old["customer_id"],
        order_id=f"order_Frg{old['booking_id']:011d}",
        payment_id=f"pay_Frg{old['booking_id']:013d}", amount_paise=150_000,
        source="webhook")
    event_id = uuid.uuid4()
    assert await apply(pool, replayed, event_id)  # backed, and changes nothing
    assert await apply(pool, real, event_id)
    assert (await facts(pool, n))["status"] == "confirmed"
    assert not await apply(pool, real, event_id)  # its redelivery is a duplicate
