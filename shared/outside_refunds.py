"""Refunds made at Razorpay without us (its dashboard, its support): Razorpay is the truth
about a payment's refunds. Each one is recorded as a refund of that payment (cause `outside`,
upserted by Razorpay's refund id) so it counts in the refunded total like our own: a full
one makes the payment `refunded` and revokes the passes (the notifier, on its events)."""

from __future__ import annotations

import logging

import asyncpg

from shared import metrics
from shared.logging import log_ctx
from shared.money import whole_number
from shared.refund_state import RefundOutcome, RefundStatus
from shared.refunds import (
    RefundCapExceeded,
    RefundedPayment,
    create_refund,
    find_refund_for,
    record_refund_outcome,
)

log = logging.getLogger(__name__)

# The payment row a Razorpay payment id is refunded against: the booking's capture, or the
# order a duplicate of it was paid on (with the duplicate's id).
_REFUNDED_PAYMENT = """
SELECT p.*, NULL::bigint AS duplicate_id FROM payments p
WHERE p.razorpay_payment_id = $1 AND p.status = 'captured'
UNION ALL
SELECT p.*, d.id FROM duplicate_payments d JOIN payments p ON p.id = d.payment_id
WHERE d.razorpay_payment_id = $1
LIMIT 1
"""


async def record_outside_refund(
    conn: asyncpg.Connection, entity: dict, status: RefundStatus, source: str,
    correlation_id: str | None,
) -> str:
    """In the caller's transaction: what happened (applied / stale / unknown_refund /
    unusable_payload / outside_refund_over_cap)."""
    razorpay_id, payment_id = entity.get("id"), entity.get("payment_id")
    amount = whole_number(entity.get("amount"))
    if not (isinstance(razorpay_id, str) and razorpay_id.startswith("rfnd_")
            and isinstance(payment_id, str) and amount is not None and amount > 0):
        return "unusable_payload"
    row = await find_refund_for(conn, entity)
    if row is None:
        payment = await conn.fetchrow(_REFUNDED_PAYMENT, payment_id)
        if payment is None:
            return "unknown_refund"  # not a payment of ours
        try:
            row = await create_refund(
                conn, payment, amount, cause="outside", reason="refunded at Razorpay",
                producer=source, correlation_id=correlation_id,
                refunded=RefundedPayment(razorpay_payment_id=payment_id,
                                         duplicate_payment_id=payment["duplicate_id"],
                                         razorpay_refund_id=razorpay_id))
        except RefundCapExceeded:
            # Ours in flight and this one add up to more than was captured: Razorpay will
            # refuse ours (it fails, giving its amount back); the refund sweep records this
            # one then.
            log.error("ALARM outside refund over what we count", extra=log_ctx(
                booking_id=payment["booking_id"], alarm="outside_refund_over_cap"))
            return "outside_refund_over_cap"
        metrics.OUTSIDE_REFUNDS.inc()
        log.info("refund made at Razorpay recorded", extra=log_ctx(
            booking_id=row["booking_id"], refund_id=row["id"]))
    if status is RefundStatus.REQUESTED:
        return "applied"
    outcome = RefundOutcome(row["id"], razorpay_id, status, amount,
                            entity.get("error_description") if status is RefundStatus.FAILED
                            else None)
    recorded = await record_refund_outcome(conn, outcome, source, correlation_id)
    return "applied" if recorded.applied else "stale"
