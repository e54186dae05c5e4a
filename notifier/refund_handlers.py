"""What the notifier does with cancellation and refund events: revoke passes, and (with the
mail outbox) tell the customer. Same contract as notifier/handlers.py: called inside the
inbox transaction; every effect is idempotent on its own too (revoked_at set once)."""

from __future__ import annotations

import logging
import uuid

import asyncpg

from notifier.mail_outbox import enqueue
from shared.events import BookingCancelled, RefundCreated, RefundFailed, RefundProcessed
from shared.logging import log_ctx

log = logging.getLogger(__name__)


async def revoke_passes(conn: asyncpg.Connection, booking_id: int) -> int:
    """Staff scanning a revoked pass are told so (`a6pay check-pass`)."""
    status = await conn.execute(
        "UPDATE passes SET revoked_at = now() WHERE booking_id = $1 AND revoked_at IS NULL",
        booking_id)
    return int(status.split()[-1])


async def booking_cancelled(
    conn: asyncpg.Connection, event: BookingCancelled, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    revoked = await revoke_passes(conn, event.booking_id)
    await enqueue(conn, booking_id=event.booking_id, customer_id=event.customer_id,
                  kind="booking_cancelled", dedupe_key=f"booking_cancelled:{event.booking_id}",
                  details={"reason": event.reason, "refund_amount_paise": event.refund_paise,
                           "cancellation_fee_paise": event.cancellation_fee_paise})
    log.info("booking cancelled: passes revoked", extra=log_ctx(
        booking_id=event.booking_id, event_id=str(event_id), revoked=revoked))


async def refund_created(
    conn: asyncpg.Connection, event: RefundCreated, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    charged_twice = event.cause == "duplicate_payment"
    await _mail(conn, event, "duplicate_payment_refund" if charged_twice else "refund_initiated")
    log.info("refund initiated", extra=log_ctx(
        booking_id=event.booking_id, refund_id=event.refund_id, event_id=str(event_id)))


async def refund_processed(
    conn: asyncpg.Connection, event: RefundProcessed, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    fully = await conn.fetchval(
        "SELECT p.refunded_paise >= p.amount_paise FROM refunds r"
        " JOIN payments p ON p.id = r.payment_id WHERE r.id = $1", event.refund_id)
    if fully:  # nothing paid is kept: the passes are no longer good
        await revoke_passes(conn, event.booking_id)
    await _mail(conn, event, "refund_processed")
    log.info("refund processed", extra=log_ctx(
        booking_id=event.booking_id, refund_id=event.refund_id, event_id=str(event_id)))


async def refund_failed(
    conn: asyncpg.Connection, event: RefundFailed, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    await _mail(conn, event, "refund_failed")
    log.error("refund failed: listed by a6pay refunds-needed", extra=log_ctx(
        booking_id=event.booking_id, refund_id=event.refund_id, event_id=str(event_id)))


async def _mail(conn, event, kind: str) -> None:
    # Razorpay's own error text stays with ops (refunds-needed); the customer gets ours.
    await enqueue(conn, booking_id=event.booking_id, customer_id=event.customer_id, kind=kind,
                  dedupe_key=f"{kind}:{event.refund_id}",
                  details={"amount_paise": event.amount_paise})


HANDLERS = {
    BookingCancelled: booking_cancelled,
    RefundCreated: refund_created,
    RefundProcessed: refund_processed,
    RefundFailed: refund_failed,
}
