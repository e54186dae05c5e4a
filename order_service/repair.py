"""Repair: a captured payment whose booking is still pending after `STUCK_AFTER_SECONDS`
(its event dead-lettered, lost, or refused) has its `payment.captured` re-emitted through
the outbox, with growing gaps, and is reported: an ALARM log line per re-emission and the
`a6pay_payments_stuck` gauge. The notifier's inbox and unique constraints absorb the copy
if the first event did arrive after all. Runs on the reconciler's tick; replicas share the
work through each payment's `repaired_at`."""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from shared.db import transaction
from shared.events import PaymentCaptured
from shared.logging import log_ctx
from shared.metrics import PAYMENTS_STUCK
from shared.outbox import add_event
from shared.settings import Settings

log = logging.getLogger(__name__)

PRODUCER = "repair"

# From the pending bookings (a partial index), one probe each into their captured payment
# (a unique index; LIMIT 1 keeps the planner from hashing the whole payments table).
# SQL as constants: tests/integration/test_query_plans.py EXPLAINs each one.
_STUCK = """
FROM bookings b CROSS JOIN LATERAL (
    SELECT * FROM payments WHERE booking_id = b.id AND status = 'captured' LIMIT 1) p
WHERE b.status = 'pending' AND p.captured_at <= now() - $1::interval
"""


def _due(row: str) -> str:
    """Not re-emitted yet, or its gap (STUCK_AFTER × 2^attempts, capped) has passed."""
    return (f"({row}repaired_at IS NULL OR {row}repaired_at <= now()"
            f" - least($2 * power(2, {row}repair_attempts), $3) * interval '1 second')")


# The due check is repeated on the row itself: a replica that waited on another's update
# sees the new repaired_at and skips the row, so one copy is emitted per gap.
CLAIM_STUCK = f"""
UPDATE payments SET repair_attempts = repair_attempts + 1, repaired_at = now()
WHERE id IN (SELECT p.id {_STUCK} AND {_due("p.")} ORDER BY p.captured_at LIMIT $4)
  AND status = 'captured' AND {_due("")}
RETURNING *
"""
COUNT_STUCK = f"SELECT count(*) {_STUCK}"
LIST_STUCK = (
    "SELECT b.id AS booking_id, b.customer_id, p.amount_paise, p.captured_at,"
    " p.repair_attempts, p.repaired_at,"
    " extract(epoch FROM now() - p.captured_at)::bigint AS stuck_seconds"
    f" {_STUCK} ORDER BY p.captured_at"
)


def stuck_after(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.stuck_after_seconds)


async def repair_stuck(pool: asyncpg.Pool, settings: Settings, batch: int = 100) -> dict:
    """One sweep: re-emit the due ones, then count every stuck payment for the gauge."""
    async with pool.acquire() as conn, transaction(conn):
        due = await conn.fetch(
            CLAIM_STUCK, stuck_after(settings), settings.stuck_after_seconds,
            settings.stuck_repair_max_gap_seconds, batch)
        for row in due:
            await add_event(conn, PaymentCaptured(
                booking_id=row["booking_id"],
                customer_id=row["customer_id"],
                order_id=row["razorpay_order_id"],
                payment_id=row["razorpay_payment_id"],
                amount_paise=row["amount_paise"],
                source=PRODUCER,
            ), PRODUCER)
    for row in due:
        log.error("ALARM: captured payment's booking still not confirmed; payment.captured"
                  " re-emitted", extra=log_ctx(booking_id=row["booking_id"],
                                               attempt=row["repair_attempts"],
                                               alarm="payment_stuck"))
    stuck = await pool.fetchval(COUNT_STUCK, stuck_after(settings))
    PAYMENTS_STUCK.set(stuck)
    return {"stuck": stuck, "reemitted": len(due)}


async def list_stuck(pool: asyncpg.Pool, settings: Settings) -> list[dict]:
    """What `a6pay stuck` prints: bookings and times, no payment or order ids."""
    rows = await pool.fetch(LIST_STUCK, stuck_after(settings))
    return [dict(r) for r in rows]
