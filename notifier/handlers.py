"""What the notifier does with each event: plain functions over an asyncpg connection.

No aio-pika or aiohttp here. `apply_event` records the event in the inbox and applies its
effect in ONE transaction, so a redelivery (same event id) is a no-op, and every effect is
also guarded by a unique constraint, so the same fact under another event id is one too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg

from shared.events import Event, OrderCreated, PaymentCaptured, PaymentFailed
from shared.logging import log_ctx
from shared.passes import passes_for

log = logging.getLogger(__name__)

CONSUMER = "notifier"


class BookingNotFound(LookupError):
    """The event names a booking we do not have: retried, then dead-lettered."""


async def apply_event(
    conn: asyncpg.Connection, event: Event, event_id: uuid.UUID, *, pass_secret: str
) -> bool:
    """Inbox + effect in one transaction. False when this event id was already applied."""
    handler = HANDLERS[type(event)]
    async with conn.transaction():
        fresh = await conn.fetchval(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            CONSUMER,
            event_id,
        )
        if not fresh:
            return False
        await handler(conn, event, event_id, pass_secret=pass_secret)
    return True


async def payment_captured(
    conn: asyncpg.Connection, event: PaymentCaptured, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    booking = await _booking(conn, event.booking_id)
    if booking["status"] == "cancelled":
        # Paid after cancellation: no passes, no confirmation; ops refund it.
        log.warning("capture for a cancelled booking", extra=_ctx(event, event_id))
        return
    await conn.execute(
        "UPDATE bookings SET status = 'confirmed', confirmed_at = now()"
        " WHERE id = $1 AND status = 'pending'",
        event.booking_id,
    )
    passes = await asyncio.to_thread(passes_for, event.booking_id, pass_secret)  # CPU: off the loop
    await conn.executemany(
        "INSERT INTO passes (booking_id, kind, token, qr_data_url) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (booking_id, kind) DO NOTHING",
        [(event.booking_id, kind, token, url) for kind, (token, url) in passes.items()],
    )
    subject = f"Booking #{booking['id']} confirmed: {booking['car_name']}"
    body = (
        f"Hi {booking['customer_name']}, your payment of {_rupees(booking['amount_paise'])}"
        f" for {booking['car_name']} ({_dates(booking)}) is confirmed. Show the collection"
        " pass when you pick the car up and the return pass when you bring it back."
    )
    await _notify(
        conn, booking, "payment_confirmed", f"payment_confirmed:{booking['id']}", subject, body
    )
    log.info("booking confirmed", extra=_ctx(event, event_id))


async def payment_failed(
    conn: asyncpg.Connection, event: PaymentFailed, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    booking = await _booking(conn, event.booking_id)
    if booking["status"] != "pending":
        # Events are not ordered: an old attempt's failure after the booking was paid
        # (or cancelled) must not tell the customer their payment failed.
        log.info("failure for a settled booking ignored", extra=_ctx(event, event_id))
        return
    attempt = event.payment_id or event.order_id
    subject = f"Payment for booking #{booking['id']} did not go through"
    body = (
        f"Hi {booking['customer_name']}, your payment of {_rupees(booking['amount_paise'])}"
        f" for {booking['car_name']} ({_dates(booking)}) was not completed. If any amount was"
        " debited, it is returned automatically (or, if your bank confirms the payment late,"
        " we confirm your booking). Your booking is still reserved and you can pay again."
    )
    await _notify(
        conn, booking, "payment_failed", f"payment_failed:{booking['id']}:{attempt}", subject, body
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
}


async def _booking(conn: asyncpg.Connection, booking_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT b.id, b.status, b.amount_paise, b.start_date, b.end_date, b.customer_id,"
        " c.name AS customer_name, c.email, car.name AS car_name"
        " FROM bookings b JOIN customers c ON c.id = b.customer_id"
        " JOIN cars car ON car.id = b.car_id WHERE b.id = $1",
        booking_id,
    )
    if row is None:
        raise BookingNotFound(booking_id)
    return row


async def _notify(conn, booking, kind: str, dedupe_key: str, subject: str, body: str) -> None:
    await conn.execute(
        "INSERT INTO notifications (booking_id, customer_id, kind, dedupe_key, recipient,"
        " subject, body) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (dedupe_key) DO NOTHING",
        booking["id"],
        booking["customer_id"],
        kind,
        dedupe_key,
        booking["email"],
        subject,
        body,
    )


def _rupees(paise: int) -> str:
    return f"₹{Decimal(paise) / 100:,.2f}"


def _dates(booking) -> str:
    return f"{booking['start_date']:%d %b %Y} to {booking['end_date']:%d %b %Y}"


def _ctx(event: Event, event_id: uuid.UUID) -> dict:
    # Booking and event ids only: never payment or order ids.
    return log_ctx(
        event_type=event.routing_key,
        event_id=str(event_id),
        booking_id=getattr(event, "booking_id", None),
    )
