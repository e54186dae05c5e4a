"""A captured payment the booking does not keep, refunded in full, once: a second one for a
booking that already has one, or one on an order made for an earlier price of the booking
(superseded by create-order: the customer pays the current price, or nothing).

Whoever finds it (a webhook's `conflict`, verify's 409, the reconciler) calls
`refund_second_capture` inside its own transaction: the duplicate's row (unique by Razorpay's
payment id) and its refund row commit together, so racing finders make one refund. The refund
is sent like every other (`shared.refunds.submit_refund`, Razorpay's refund idempotency on
the call), by the finder after its commit or by the refund worker.
"""

from __future__ import annotations

import logging

import asyncpg

from shared import metrics
from shared.logging import log_ctx
from shared.payment_state import PaymentOutcome, PaymentStatus
from shared.refunds import RefundedPayment, RefundWhileDisputed, create_refund

log = logging.getLogger(__name__)

_NEW_DUPLICATE = """
INSERT INTO duplicate_payments (booking_id, payment_id, razorpay_payment_id, amount_paise,
                                found_by)
SELECT p.booking_id, p.id, $2, $3, $4 FROM payments p
WHERE p.razorpay_order_id = $1
  AND (p.superseded_at IS NOT NULL
       OR EXISTS (SELECT FROM payments c WHERE c.booking_id = p.booking_id
                  AND c.status = 'captured' AND c.razorpay_payment_id <> $2))
  AND NOT EXISTS (SELECT FROM payments c WHERE c.razorpay_payment_id = $2
                  AND c.status = 'captured')
ON CONFLICT (razorpay_payment_id) DO NOTHING
RETURNING *
"""


async def refund_second_capture(
    conn: asyncpg.Connection, captured: PaymentOutcome, found_by: str, correlation_id: str | None
) -> int | None:
    """Record `captured` as a capture its booking does not keep and write its full refund;
    the refund row's id, or None (the booking keeps it, or it was found before)."""
    if captured.status is not PaymentStatus.CAPTURED:
        return None
    duplicate = await conn.fetchrow(_NEW_DUPLICATE, captured.order_id, captured.payment_id,
                                    captured.amount_paise, found_by)
    if duplicate is None:
        return None
    metrics.DUPLICATE_PAYMENTS.labels(found_by).inc()
    order = await conn.fetchrow("SELECT * FROM payments WHERE id = $1", duplicate["payment_id"])
    old_price = order["superseded_at"] is not None
    log.warning("payment on an order for an earlier price: refunding it" if old_price else
                "second captured payment for a paid booking: refunding it",
                extra=log_ctx(booking_id=duplicate["booking_id"]))
    try:
        refund = await create_refund(
            conn, order, duplicate["amount_paise"], cause="duplicate_payment",
            reason="paid on an order for an earlier price: refunded" if old_price
            else "charged twice: the second payment is refunded", producer=found_by,
            correlation_id=correlation_id,
            refunded=RefundedPayment(razorpay_payment_id=captured.payment_id,
                                     duplicate_payment_id=duplicate["id"]))
    except RefundWhileDisputed:
        log.error("ALARM duplicate payment is disputed: not refunded", extra=log_ctx(
            booking_id=duplicate["booking_id"], alarm="duplicate_payment_disputed"))
        return None
    return refund["id"]


async def duplicates_of(conn: asyncpg.Connection, booking_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM duplicate_payments WHERE booking_id = $1 ORDER BY id", booking_id)
