"""What the notifier does with each event: plain functions over an asyncpg connection.

No aio-pika or aiohttp here. `apply_event` records the event in the inbox and applies its
effect in ONE transaction, so a redelivery (same event id) is a no-op, and every effect is
also guarded by a unique constraint, so the same fact under another event id is one too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from notifier import refund_handlers
from notifier.mail_outbox import enqueue
from shared.events import Event, OrderCreated, PaymentCaptured, PaymentFailed
from shared.logging import log_ctx
from shared.pass_store import ensure_passes

log = logging.getLogger(__name__)

CONSUMER = "notifier"

INSERT_INBOX = (
    "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)"
    " ON CONFLICT DO NOTHING RETURNING true"
)
CONFIRM_BOOKING = (
    "UPDATE bookings SET status = 'confirmed', confirmed_at = now()"
    " WHERE id = $1 AND status = 'pending'"
)
BOOKING_DETAILS = (
    "SELECT b.id, b.status, b.amount_paise, b.start_date, b.end_date, b.customer_id,"
    " c.name AS customer_name, c.email, car.name AS car_name"
    " FROM bookings b JOIN customers c ON c.id = b.customer_id"
    " JOIN cars car ON car.id = b.car_id WHERE b.id = $1"
)


class BookingNotFound(LookupError):
    """The event names a booking we do not have: retried, then dead-lettered."""


class UnbackedCapture(Exception):
    """A payment.captured that no captured payment in our database stands behind (forged,
    or corrupt): refused, never retried, dead-lettered at once and raised as an alarm."""


async def apply_event(
    conn: asyncpg.Connection, event: Event, event_id: uuid.UUID, *, pass_secret: str
) -> bool:
    """Inbox + effect in one transaction. False when this event id was already applied."""
    handler = HANDLERS[type(event)]
    async with conn.transaction():
        fresh = await conn.fetchval(INSERT_INBOX, CONSUMER, event_id)
        if not fresh:
            return False
        await handler(conn, event, event_id, pass_secret=pass_secret)
    return True


async def payment_captured(
    conn: asyncpg.Connection, event: PaymentCaptured, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    # The booking row stays locked to the end of this transaction: a cancellation that
    # commits after this read waits for us, one that committed before is seen here.
    booking = await _booking(conn, event.booking_id, lock=True)
    if not await _capture_on_record(conn, event):
        raise UnbackedCapture(event.booking_id)
    if booking["status"] == "cancelled":
        # Paid after cancellation: no passes, no confirmation; it is refunded automatically
        # (shared/payments.py wrote that refund with the capture).
        log.warning("capture for a cancelled booking", extra=_ctx(event, event_id))
        return
    await conn.execute(CONFIRM_BOOKING, event.booking_id)
    # verify-payment may have stored them already: then nothing is rendered here
    await ensure_passes(conn, event.booking_id, pass_secret)
    await enqueue(
        conn,
        booking_id=booking["id"],
        customer_id=booking["customer_id"],
        kind="payment_confirmed",
        dedupe_key=f"payment_confirmed:{booking['id']}",
        details={"amount_paise": event.amount_paise},
    )
    log.info("booking confirmed", extra=_ctx(event, event_id))


async def payment_failed(
    conn: asyncpg.Connection, event: PaymentFailed, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    booking = await _booking(conn, event.booking_id, lock=True)
    if booking["status"] != "pending":
        # Events are not ordered: an old attempt's failure after the booking was paid
        # (or cancelled) must not tell the customer their payment failed.
        log.info("failure for a settled booking ignored", extra=_ctx(event, event_id))
        return
    attempt = event.payment_id or event.order_id
    await enqueue(
        conn,
        booking_id=booking["id"],
        customer_id=booking["customer_id"],
        kind="payment_failed",
        dedupe_key=f"payment_failed:{booking['id']}:{attempt}",
        # Razorpay's reason is for the customer; the attempt's ids stay out of the mail.
        details={"reason": event.error_description},
    )
    log.info("payment failure notified", extra=_ctx(event, event_id))


async def order_created(
    conn: asyncpg.Connection, event: OrderCreated, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    log.debug("order created: nothing to do", extra=_ctx(event, event_id))


Handler = Callable[..., Awaitable[None]]
HANDLERS: dict[type[Event], Handler] = {
    PaymentCaptured: payment_captured,
    PaymentFailed: payment_failed,
    OrderCreated: order_created,
    **refund_handlers.HANDLERS,
}


async def _booking(
    conn: asyncpg.Connection, booking_id: int, *, lock: bool = False
) -> asyncpg.Record:
    # NO KEY UPDATE: what an UPDATE takes; waits for a cancellation, not for FK checks
    lock_clause = " FOR NO KEY UPDATE OF b" if lock else ""
    row = await conn.fetchrow(BOOKING_DETAILS + lock_clause, booking_id)
    if row is None:
        raise BookingNotFound(booking_id)
    return row


async def _capture_on_record(conn: asyncpg.Connection, event: PaymentCaptured) -> bool:
    """The broker is not a source of truth: only a capture our own services recorded (the
    event is written in the same transaction) may confirm a booking."""
    return bool(await conn.fetchval(
        "SELECT true FROM payments WHERE booking_id = $1 AND customer_id = $2"
        " AND razorpay_order_id = $3 AND razorpay_payment_id = $4 AND amount_paise = $5"
        " AND status = 'captured'",
        event.booking_id, event.customer_id, event.order_id, event.payment_id,
        event.amount_paise,
    ))


def _ctx(event: Event, event_id: uuid.UUID) -> dict:
    # Booking and event ids only: never payment or order ids.
    return log_ctx(
        event_type=event.routing_key,
        event_id=str(event_id),
        booking_id=getattr(event, "booking_id", None),
    )
