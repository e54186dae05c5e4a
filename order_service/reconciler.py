"""Reconciliation: asks Razorpay about orders nobody has reported on, with growing gaps, and
feeds what it learns through the same state machine as verify and the webhook. A payment
whose webhook never came and whose browser never returned still ends confirmed."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg
from aiohttp import web

from order_service.repair import repair_stuck
from shared import metrics
from shared.capture_hold import capture_withheld
from shared.db import Autocommit
from shared.duplicate_payments import refund_second_capture
from shared.outage import every
from shared.outbox import outbox_transaction
from shared.payment_state import PaymentStatus
from shared.payments import capture_authorized, record_outcome
from shared.razorpay_client import RazorpayClient, RazorpayError
from shared.razorpay_map import best_outcome, outcome_from_payment
from shared.service import POOL, RAZORPAY, SETTINGS
from shared.settings import Settings

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)  # a claimed row is left alone this long by other replicas

_CLAIM = """
UPDATE payments SET next_reconcile_at = now() + $2::interval
WHERE id IN (
    SELECT id FROM payments
    WHERE status <> 'captured'{}
    ORDER BY next_reconcile_at LIMIT $1
    FOR UPDATE SKIP LOCKED)
RETURNING razorpay_order_id, reconcile_attempts, created_at
"""
# Due orders only: the range is an index condition on payments_reconcile_due, so a poll
# reads what is due and nothing else, however many old open or failed orders there are.
CLAIM_DUE = _CLAIM.format(" AND next_reconcile_at <= now()")
# `a6pay reconcile`: every open order, given-up ones too (an operator's full pass).
CLAIM_ALL = _CLAIM.format("")
# Captured orders due their one second look (payments_second_look): a second payment may
# have been captured on the order after ours, with every webhook of it lost. Leased, not
# marked done: SECOND_LOOK_DONE commits with what the look found.
CLAIM_SECOND_LOOKS = """
UPDATE payments SET second_look_leased_until = now() + $3::interval
WHERE id IN (
    SELECT id FROM payments
    WHERE second_look_due AND captured_at <= now() - $2::interval
      AND (second_look_leased_until IS NULL OR second_look_leased_until <= now())
    ORDER BY captured_at LIMIT $1
    FOR UPDATE SKIP LOCKED)
RETURNING razorpay_order_id, razorpay_payment_id
"""
SECOND_LOOK_DONE = ("UPDATE payments SET second_look_due = false,"
                    " second_look_leased_until = NULL WHERE razorpay_order_id = $1")
RECORD_ATTEMPT = (
    "UPDATE payments SET reconcile_attempts = $2,"
    " next_reconcile_at = CASE WHEN status = $4 OR now() > $5 THEN NULL"
    "   ELSE now() + $3::interval END"
    " WHERE razorpay_order_id = $1"
)


def next_gap(settings: Settings, attempts: int) -> timedelta:
    """15 min, 30 min, 1 h, … capped: growing gaps so a quiet order costs little."""
    seconds = settings.reconcile_first_delay_seconds * (2 ** min(attempts, 20))
    return timedelta(seconds=min(seconds, settings.reconcile_max_gap_seconds))


async def reconcile(
    pool: asyncpg.Pool, razorpay: RazorpayClient, settings: Settings, *, everything: bool = False
) -> dict[str, int]:
    """One pass over due orders (or every open order); returns counts of what happened."""
    summary = {"checked": 0, "captured": 0, "failed": 0, "authorized": 0, "unchanged": 0,
               "errors": 0}
    batch = 10_000 if everything else 50
    while True:
        async with pool.acquire() as conn:
            claimed = await Autocommit(conn).fetch(CLAIM_ALL if everything else CLAIM_DUE,
                                                   batch, LEASE)
        for row in claimed:
            result = await _reconcile_one(pool, razorpay, settings, row)
            summary["checked"] += 1
            summary[result] += 1
            metrics.RECONCILE.labels(result).inc()
        # Handled rows are pushed into the future, so the due-only loop always ends.
        if everything or len(claimed) < batch:
            return summary


def second_captures(payments: list[dict], order_id: str, kept_payment_id: str):
    """Captured payments on the order besides the one the booking keeps."""
    for entity in payments:
        other = outcome_from_payment(entity)
        if other is not None and other.order_id == order_id and (
                other.status is PaymentStatus.CAPTURED and other.payment_id != kept_payment_id):
            yield other


async def look_again(pool: asyncpg.Pool, razorpay: RazorpayClient, settings: Settings) -> int:
    """The second look at captured orders that are due one; how many second captures it
    found (each refunded in full, once)."""
    async with pool.acquire() as conn:
        due = await Autocommit(conn).fetch(
            CLAIM_SECOND_LOOKS, 50, timedelta(seconds=settings.reconcile_first_delay_seconds),
            LEASE)
    found = 0
    for row in due:
        order_id = row["razorpay_order_id"]
        try:
            payments = await razorpay.fetch_order_payments(order_id)
        except RazorpayError:
            async with pool.acquire() as conn:  # next tick
                await Autocommit(conn).execute("UPDATE payments SET second_look_leased_until = NULL"
                                               " WHERE razorpay_order_id = $1", order_id)
            continue
        async with outbox_transaction(pool) as conn:
            for other in second_captures(payments, order_id, row["razorpay_payment_id"]):
                found += await refund_second_capture(conn, other, "reconcile", None) is not None
            await conn.execute(SECOND_LOOK_DONE, order_id)
    return found


async def _reconcile_one(pool, razorpay, settings, row) -> str:
    """What became of one order: captured, failed, authorized, unchanged or errors."""
    try:
        payments = await razorpay.fetch_order_payments(row["razorpay_order_id"])
    except RazorpayError as exc:
        # the lease expires and the order is tried again
        log.warning("reconcile: razorpay unavailable (%s)", type(exc).__name__)
        return "errors"
    outcome = best_outcome(p for p in payments if p.get("order_id") == row["razorpay_order_id"])
    if outcome is not None and outcome.status is PaymentStatus.AUTHORIZED and (
        settings.capture_on_verify
    ) and not await capture_withheld(pool, outcome.order_id):
        outcome = await capture_authorized(razorpay, outcome) or outcome
    async with outbox_transaction(pool) as conn:
        recorded = None
        if outcome is not None:
            recorded = await record_outcome(conn, outcome, "reconcile", None)
            # charged twice: each capture the booking does not keep is refunded, once
            kept_elsewhere = [outcome] if recorded.conflict else []
            for other in [*kept_elsewhere, *second_captures(payments, row["razorpay_order_id"],
                                                           outcome.payment_id)]:
                await refund_second_capture(conn, other, "reconcile", None)
        result = outcome.status.value if recorded is not None and recorded.applied else (
            "unchanged")
        attempts = row["reconcile_attempts"] + 1
        give_up = row["created_at"] + timedelta(seconds=settings.reconcile_give_up_after_seconds)
        await conn.execute(
            RECORD_ATTEMPT,
            row["razorpay_order_id"],
            attempts,
            next_gap(settings, attempts),
            PaymentStatus.CAPTURED.value,
            give_up,
        )
    return result


async def run_reconciler(app: web.Application) -> None:
    """Every RECONCILE_POLL_SECONDS: ask Razorpay about due orders, and repair captured
    payments whose booking is still not confirmed (order_service/repair.py). Two loops, so
    a pass that fails does not skip the other."""
    pool, razorpay, settings = app[POOL], app[RAZORPAY], app[SETTINGS]

    async def reconcile_pass() -> None:
        summary = await reconcile(pool, razorpay, settings)
        summary["second_captures"] = await look_again(pool, razorpay, settings)
        if summary["checked"] or summary["second_captures"]:
            log.info("reconcile pass", extra={"ctx": summary})

    await asyncio.gather(
        every(settings.reconcile_poll_seconds, "reconcile pass", log, reconcile_pass),
        every(settings.reconcile_poll_seconds, "stuck-payment sweep", log,
              lambda: repair_stuck(pool, settings)))
