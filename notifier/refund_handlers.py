"""What the notifier does with cancellation and refund events: revoke passes, and (with the
mail outbox) tell the customer. Same contract as notifier/handlers.py: called inside the
inbox transaction; every effect is idempotent on its own too (revoked_at set once); an
event the database does not stand behind raises UnbackedEvent and so leaves nothing
behind."""

from __future__ import annotations

import logging
import uuid

import asyncpg

from notifier.backing import UnbackedEvent
from notifier.mail_outbox import enqueue
from shared.events import BookingCancelled, RefundCreated, RefundFailed, RefundProcessed
from shared.logging import log_ctx
from shared.refund_state import RefundStatus

log = logging.getLogger(__name__)


async def revoke_passes(conn: asyncpg.Connection, booking_id: int) -> int:
    """Staff scanning a revoked pass are told so (`a6pay check-pass`)."""
    status = await conn.execute(
        "UPDATE passes SET revoked_at = now() WHERE booking_id = $1 AND revoked_at IS NULL",
        booking_id)
    return int(status.split()[-1])


# The cancellation a booking.cancelled reports, as the database holds it.
CANCELLATION = """
SELECT b.cancellation_reason, b.cancellation_fee_paise,
       (SELECT r.amount_paise FROM refunds r WHERE r.booking_id = b.id
        AND r.cause = 'cancellation' ORDER BY r.id LIMIT 1) AS refund_paise
FROM bookings b WHERE b.id = $1 AND b.customer_id = $2 AND b.status = 'cancelled'
"""
# The refund a refund.* event reports: that refund, of that booking and customer, for that
# amount; `old_price`: it refunds a payment made on an order for an earlier price.
REFUND = """
SELECT r.status, r.amount_paise, r.cause, p.superseded_at IS NOT NULL AS old_price
FROM refunds r JOIN bookings b ON b.id = r.booking_id JOIN payments p ON p.id = r.payment_id
WHERE r.id = $1 AND r.booking_id = $2 AND b.customer_id = $3 AND r.amount_paise = $4
"""
# Nothing paid is kept: the processed refunds of the booking's payment (a duplicate
# payment's refunds are the duplicate's) reach what was captured. Refunds still pending
# count for nothing: one that fails later must not have revoked the passes.
FULLY_REFUNDED = """
SELECT p.amount_paise <= (SELECT COALESCE(sum(x.amount_paise), 0) FROM refunds x
                          WHERE x.payment_id = p.id AND x.duplicate_payment_id IS NULL
                            AND x.status = 'processed')
FROM refunds r JOIN payments p ON p.id = r.payment_id
WHERE r.id = $1 AND r.duplicate_payment_id IS NULL
"""


async def booking_cancelled(
    conn: asyncpg.Connection, event: BookingCancelled, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    cancellation = await conn.fetchrow(CANCELLATION, event.booking_id, event.customer_id)
    if cancellation is None:  # the booking is not cancelled: nobody cancelled it
        raise UnbackedEvent(event.booking_id)
    revoked = await revoke_passes(conn, event.booking_id)
    await enqueue(conn, booking_id=event.booking_id, customer_id=event.customer_id,
                  kind="booking_cancelled", dedupe_key=f"booking_cancelled:{event.booking_id}",
                  details={"reason": cancellation["cancellation_reason"],
                           "refund_amount_paise": cancellation["refund_paise"] or 0,
                           "cancellation_fee_paise":
                               cancellation["cancellation_fee_paise"] or 0})
    log.info("booking cancelled: passes revoked", extra=log_ctx(
        booking_id=event.booking_id, event_id=str(event_id), revoked=revoked))


async def refund_created(
    conn: asyncpg.Connection, event: RefundCreated, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    refund = await _refund(conn, event)
    kind = "refund_initiated"
    if refund["cause"] == "duplicate_payment":
        kind = "old_price_payment_refund" if refund["old_price"] else "duplicate_payment_refund"
    await _mail(conn, event, refund, kind)
    log.info("refund initiated", extra=log_ctx(
        booking_id=event.booking_id, refund_id=event.refund_id, event_id=str(event_id)))


async def refund_processed(
    conn: asyncpg.Connection, event: RefundProcessed, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    refund = await _refund(conn, event, RefundStatus.PROCESSED)
    if await conn.fetchval(FULLY_REFUNDED, event.refund_id):
        await revoke_passes(conn, event.booking_id)  # the refund's own booking (_refund)
    await _mail(conn, event, refund, "refund_processed")
    log.info("refund processed", extra=log_ctx(
        booking_id=event.booking_id, refund_id=event.refund_id, event_id=str(event_id)))


async def refund_failed(
    conn: asyncpg.Connection, event: RefundFailed, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    refund = await _refund(conn, event, RefundStatus.FAILED)
    await _mail(conn, event, refund, "refund_failed")
    log.error("refund failed: listed by a6pay refunds-needed", extra=log_ctx(
        booking_id=event.booking_id, refund_id=event.refund_id, event_id=str(event_id)))


async def _refund(conn, event, status: RefundStatus | None = None) -> asyncpg.Record:
    """The refund row the event reports, in `status` if given; UnbackedEvent otherwise."""
    refund = await conn.fetchrow(
        REFUND, event.refund_id, event.booking_id, event.customer_id, event.amount_paise)
    if refund is None or (status is not None and refund["status"] != status):
        raise UnbackedEvent(event.booking_id)
    return refund


async def _mail(conn, event, refund, kind: str) -> None:
    # Razorpay's own error text stays with ops (refunds-needed); the customer gets ours.
    await enqueue(conn, booking_id=event.booking_id, customer_id=event.customer_id, kind=kind,
                  dedupe_key=f"{kind}:{event.refund_id}",
                  details={"amount_paise": refund["amount_paise"]})


HANDLERS = {
    BookingCancelled: booking_cancelled,
    RefundCreated: refund_created,
    RefundProcessed: refund_processed,
    RefundFailed: refund_failed,
}
