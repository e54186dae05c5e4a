"""Razorpay is the truth about a payment's refunds. Before we ask for a refund, the payment's
`amount_refunded` at Razorpay is compared with what we count; refunds listed there that we
have not seen (a dashboard refund whose webhook was lost) are recorded first (cause
`outside`), so what we think remains is what Razorpay would still refund."""

from __future__ import annotations

import logging

import asyncpg

from shared.outbox import outbox_transaction
from shared.outside_refunds import record_outside_refund
from shared.razorpay_client import RazorpayClient, RazorpayError
from shared.razorpay_map import refund_status
from shared.refunds import find_refund_for

log = logging.getLogger(__name__)

# The booking's payments we count refunds of: its kept capture and its second charges.
_COUNTED = """
SELECT razorpay_payment_id, refunded_paise FROM payments
WHERE booking_id = $1 AND status = 'captured'
UNION ALL
SELECT razorpay_payment_id, refunded_paise FROM duplicate_payments WHERE booking_id = $1
"""


async def catch_up_refunds(pool: asyncpg.Pool, razorpay: RazorpayClient, booking_id: int) -> int:
    """Record the refunds Razorpay made of the booking's payments that we have not seen;
    how many. Called before a refund is written, so we never ask for more than remains
    there. Razorpay away: nothing is recorded and the caller goes on, since its refund row
    waits for Razorpay anyway (the refund worker sends it)."""
    async with pool.acquire() as conn:
        payments = await conn.fetch(_COUNTED, booking_id)
    recorded = 0
    try:
        for counted in payments:
            payment = await razorpay.fetch_payment(counted["razorpay_payment_id"])
            refunded = payment.get("amount_refunded")
            if isinstance(refunded, int) and refunded > counted["refunded_paise"]:
                recorded += await record_refund_entities(
                    pool, await razorpay.fetch_payment_refunds(counted["razorpay_payment_id"]))
    except RazorpayError as exc:
        log.warning("refunds not compared with Razorpay: %s", type(exc).__name__)
    return recorded


async def record_refund_entities(pool: asyncpg.Pool, entities: list[dict]) -> int:
    """Each Razorpay refund entity we do not have yet, recorded; how many were new."""
    recorded = 0
    for entity in entities:
        status = refund_status(entity.get("status"))
        if status is None:
            continue
        async with outbox_transaction(pool) as conn:
            if await find_refund_for(conn, entity) is not None:
                continue
            result = await record_outside_refund(conn, entity, status, "reconcile", None)
            recorded += result == "applied"
    return recorded
