"""Applies the refund state machine in SQL, and talks to Razorpay about one refund.

The order of things is what makes a refund safe:
1. `create_refund` writes the refund row (status requested) in the caller's transaction.
   A trigger adds its amount to the payment's running total under the payment's row lock,
   and a CHECK refuses a total above the captured amount: racing refunds can't over-refund.
   A trigger also refuses one while the payment's dispute is open, or beyond what lost
   disputes (chargebacks) left of it.
2. `submit_refund`, after that commit and outside any transaction, claims the row with a
   lease (not while a dispute stands in its way: it is held), asks Razorpay (our row id in
   the refund's notes), and records the answer. If an earlier attempt's answer was lost, it
   first looks for that refund among the payment's refunds, so it never asks twice; a
   refusal of such a retry leaves the row requested to be looked for again, until Razorpay
   has had time to list what the earlier call made.
3. Webhooks and the poller feed `record_refund_outcome`: one conditional UPDATE, forward
   only, and an outbox event only when it changed the row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from shared import metrics
from shared.db import Autocommit, savepoint
from shared.events import RefundCreated, RefundFailed, RefundProcessed
from shared.logging import log_ctx
from shared.money import paise_to_rupees
from shared.outbox import add_event, outbox_transaction
from shared.razorpay_client import (
    REFUND_NOTE,
    RazorpayClient,
    RazorpayError,
    RazorpayRejected,
)
from shared.razorpay_map import refund_outcome
from shared.refund_state import RefundOutcome, RefundStatus, allowed_sources, is_terminal

log = logging.getLogger(__name__)

MIN_REFUND_PAISE = 100  # Razorpay refunds at least ₹1
SUBMIT_LEASE = timedelta(seconds=60)  # a submitter's claim; then another may look again
RETRY_AFTER = timedelta(seconds=15)  # after Razorpay could not be reached
DISPUTE_HOLD = timedelta(hours=1)  # a held refund is looked at again after this
FIRST_POLL = timedelta(seconds=60)  # a pending refund is asked about after this, then doubling
MAX_POLL_GAP = timedelta(hours=6)
# A refusal of a repeated call is not believed before this: an earlier call whose answer was
# lost may still be at work at Razorpay (a repeat is refused meanwhile) or not yet in the
# payment's list of refunds. By then a refund Razorpay made is listed, and found first.
REFUSAL_BELIEVED_AFTER = timedelta(minutes=10)


class RefundCapExceeded(Exception):
    """The database refused the refund: it would refund more than was captured."""


class RefundWhileDisputed(Exception):
    """The database refused the refund: the payment has an open dispute, or lost disputes
    already returned the money it would pay (migration 018)."""


@dataclass(frozen=True)
class RefundedPayment:
    """What a refund row names besides the booking's payment row (all optional)."""

    razorpay_payment_id: str | None = None  # None: the booking's captured payment
    duplicate_payment_id: int | None = None  # a second capture of the booking
    razorpay_refund_id: str | None = None  # a refund Razorpay made without us


@dataclass(frozen=True)
class Recorded:
    applied: bool
    refund: asyncpg.Record | None


# The checks that say the refunded payment has nothing left for this amount.
_NOTHING_LEFT = frozenset({"payments_refund_cap", "duplicate_payments_refund_cap",
                           "refunds_captured_payment"})


async def create_refund(
    conn: asyncpg.Connection,
    payment: asyncpg.Record,
    amount_paise: int,
    *,
    cause: str,
    reason: str | None = None,
    idempotency_key: str | None = None,
    producer: str,
    correlation_id: str | None = None,
    refunded: RefundedPayment | None = None,
) -> asyncpg.Record:
    """The refund row and its `refund.created` event, in the caller's transaction. The
    refund is of the booking's captured payment `payment`, unless `refunded` names another
    Razorpay payment (a duplicate of it) or a refund Razorpay already made."""
    refunded = refunded or RefundedPayment()
    try:
        async with savepoint(conn):  # a refused insert must not abort the caller
            row = await conn.fetchrow(
                "INSERT INTO refunds (payment_id, booking_id, amount_paise, cause, reason,"
                " idempotency_key, razorpay_payment_id, duplicate_payment_id,"
                " razorpay_refund_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
                payment["id"], payment["booking_id"], amount_paise, cause,
                (reason or "")[:500] or None, idempotency_key, refunded.razorpay_payment_id,
                refunded.duplicate_payment_id, refunded.razorpay_refund_id,
            )
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name == "refunds_not_while_disputed":
            raise RefundWhileDisputed(str(exc)) from None
        if exc.constraint_name in _NOTHING_LEFT:
            raise RefundCapExceeded(str(exc)) from None
        raise  # a row the schema forbids is a bug: loud, never taken for a full payment
    await add_event(conn, RefundCreated(
        refund_id=row["id"], booking_id=row["booking_id"], customer_id=payment["customer_id"],
        amount_paise=amount_paise, cause=cause,
    ), producer, correlation_id)
    metrics.REFUNDS.labels("requested").inc()
    log.info("refund requested", extra=log_ctx(booking_id=row["booking_id"], refund_id=row["id"]))
    return row


_RECORD = """
UPDATE refunds SET
    status = $2,
    razorpay_refund_id = COALESCE(razorpay_refund_id, NULLIF($3, '')),
    failure_reason = CASE WHEN $2 = 'failed' THEN $5 ELSE failure_reason END,
    processed_at = CASE WHEN $2 = 'processed' THEN now() ELSE processed_at END,
    next_check_at = CASE WHEN $2 = 'pending' THEN now() + $6::interval ELSE NULL END,
    updated_at = now()
WHERE id = $1 AND status = ANY($4::text[])
  AND (razorpay_refund_id IS NULL OR razorpay_refund_id = $3 OR $3 = '')
  AND amount_paise = $7
RETURNING *
"""


async def record_refund_outcome(
    conn: asyncpg.Connection, outcome: RefundOutcome, source: str, correlation_id: str | None
) -> Recorded:
    """One conditional UPDATE; events for processed and failed. Duplicates change nothing."""
    row = await conn.fetchrow(
        _RECORD, outcome.refund_id, outcome.status.value, outcome.razorpay_refund_id,
        allowed_sources(outcome.status),
        (outcome.error or "refund failed")[:500], FIRST_POLL, outcome.amount_paise,
    )
    if row is None:
        current = await conn.fetchrow("SELECT * FROM refunds WHERE id = $1", outcome.refund_id)
        if current is not None and current["razorpay_refund_id"] is None and (
            outcome.razorpay_refund_id
        ):
            # e.g. processed reported before we learned the Razorpay id: keep the id anyway
            await conn.execute(
                "UPDATE refunds SET razorpay_refund_id = $2 WHERE id = $1"
                " AND razorpay_refund_id IS NULL AND status = $3",
                outcome.refund_id, outcome.razorpay_refund_id, outcome.status.value)
        return Recorded(False, current)
    await _emit(conn, row, outcome, source, correlation_id)
    return Recorded(True, row)


async def _emit(conn, row, outcome: RefundOutcome, source: str, correlation_id) -> None:
    customer_id = await conn.fetchval(
        "SELECT customer_id FROM bookings WHERE id = $1", row["booking_id"])
    common = {"refund_id": row["id"], "booking_id": row["booking_id"],
              "customer_id": customer_id, "amount_paise": row["amount_paise"]}
    if outcome.status is RefundStatus.PROCESSED:
        metrics.REFUNDS.labels("processed").inc()
        await add_event(conn, RefundProcessed(**common, source=source), source, correlation_id)
    elif outcome.status is RefundStatus.FAILED:
        metrics.REFUNDS.labels("failed").inc()
        # Money the customer is owed did not move: an operator must act (refunds-needed).
        log.error("ALARM refund failed", extra=log_ctx(
            booking_id=row["booking_id"], refund_id=row["id"], alarm="refund_failed"))
        await add_event(conn, RefundFailed(**common, error=row["failure_reason"], source=source),
                        source, correlation_id)


async def find_refund_for(conn: asyncpg.Connection, entity: dict) -> asyncpg.Record | None:
    """Our refund row for a Razorpay refund entity: by its id, or (before we learned that id)
    by our row id in its notes, and only if it is on the payment we refunded."""
    razorpay_id, payment_id = entity.get("id"), entity.get("payment_id")
    if not isinstance(razorpay_id, str) or not isinstance(payment_id, str):
        return None
    note = str((entity.get("notes") or {}).get(REFUND_NOTE, ""))
    ours = int(note) if note.isascii() and note.isdigit() and len(note) < 19 else None
    return await conn.fetchrow(
        "SELECT r.* FROM refunds r"
        " WHERE (r.razorpay_refund_id = $1 OR (r.id = $2 AND r.razorpay_refund_id IS NULL))"
        " AND r.razorpay_payment_id = $3 LIMIT 1", razorpay_id, ours, payment_id)


# A refund is sent only while no dispute stands in its way (`refund_disputed`, migration
# 018): one written before its payment's dispute opened waits for the decision.
_CLAIM_FOR_SUBMIT = """
UPDATE refunds r SET next_check_at = now() + $2::interval, attempts = r.attempts + 1,
    updated_at = now()
WHERE r.id = $1 AND r.status = 'requested' AND r.next_check_at <= now()
  AND refund_disputed(r) IS NULL
RETURNING r.*, r.created_at < now() - $3::interval AS refusal_believed
"""
_HOLD = """
UPDATE refunds r SET next_check_at = now() + $2::interval
WHERE r.id = $1 AND r.status = 'requested' AND r.next_check_at <= now()
  AND refund_disputed(r) IS NOT NULL
RETURNING refund_disputed(r) AS why, r.booking_id
"""


async def submit_refund(
    pool: asyncpg.Pool, razorpay: RazorpayClient, refund_id: int, source: str = "refund_call"
) -> asyncpg.Record | None:
    """Ask Razorpay for refund `refund_id` unless another submitter holds it; the row after.

    Never inside a transaction: the claim commits first, the call runs, the answer is
    recorded in a transaction of its own."""
    async with pool.acquire() as conn:
        claimed = await Autocommit(conn).fetchrow(_CLAIM_FOR_SUBMIT, refund_id, SUBMIT_LEASE,
                                                  REFUSAL_BELIEVED_AFTER)
        if claimed is None:
            await _hold_if_disputed(conn, refund_id)
            return await conn.fetchrow("SELECT * FROM refunds WHERE id = $1", refund_id)
    outcome = await _ask_razorpay(razorpay, claimed)
    async with outbox_transaction(pool) as conn:
        if outcome is None:  # unreachable: try again soon (looking for it first)
            await conn.execute(
                "UPDATE refunds SET next_check_at = now() + $2::interval"
                " WHERE id = $1 AND status = 'requested'", refund_id, RETRY_AFTER)
        else:
            await record_refund_outcome(conn, outcome, source, None)
        return await conn.fetchrow("SELECT * FROM refunds WHERE id = $1", refund_id)


async def _hold_if_disputed(conn: asyncpg.Connection, refund_id: int) -> None:
    held = await Autocommit(conn).fetchrow(_HOLD, refund_id, DISPUTE_HOLD)
    if held is None:
        return
    ids = {"booking_id": held["booking_id"], "refund_id": refund_id}
    if held["why"] == "open":
        log.info("refund held until its payment's dispute is decided", extra=log_ctx(**ids))
    else:
        # Sending it would pay the customer twice; its amount never changes, so a person
        # decides what, if anything, is still owed.
        log.error("ALARM refund held: lost disputes already returned this money",
                  extra=log_ctx(**ids, alarm="refund_charged_back"))


async def _ask_razorpay(razorpay: RazorpayClient, claimed) -> RefundOutcome | None:
    payment_id, refund_id = claimed["razorpay_payment_id"], claimed["id"]
    try:
        if claimed["attempts"] > 1:  # an earlier answer may have been lost: look first
            found = await razorpay.find_refund(payment_id, refund_id)
            if found is not None:
                return refund_outcome(found, refund_id)
        answer = await razorpay.refund_payment(
            payment_id, claimed["amount_paise"], refund_id=refund_id, receipt=f"a6-rf{refund_id}")
    except RazorpayRejected as exc:
        if claimed["attempts"] > 1 and not claimed["refusal_believed"]:
            log.warning("refund retry refused: looking for it again later",
                        extra=log_ctx(refund_id=refund_id))
            return None
        return RefundOutcome(refund_id, "", RefundStatus.FAILED, claimed["amount_paise"],
                             str(exc)[:300] or "refused by Razorpay")
    except RazorpayError as exc:
        log.warning("refund call failed: %s", type(exc).__name__,
                    extra=log_ctx(refund_id=refund_id))
        return None
    outcome = refund_outcome(answer, refund_id)
    if outcome is None:
        log.error("razorpay answered a refund with something else", extra=log_ctx(
            refund_id=refund_id))
    return outcome


async def poll_refund(pool: asyncpg.Pool, razorpay: RazorpayClient, row) -> bool:
    """Ask Razorpay where a pending refund stands; True if that changed our row."""
    try:
        entity = await razorpay.fetch_refund(row["razorpay_refund_id"])
    except RazorpayError as exc:
        log.warning("refund poll failed: %s", type(exc).__name__)
        return False
    outcome = refund_outcome(entity, row["id"])
    async with outbox_transaction(pool) as conn:
        recorded = None
        if outcome is not None and outcome.status is not RefundStatus.PENDING:
            recorded = await record_refund_outcome(conn, outcome, "reconcile", None)
        if recorded is None or not recorded.applied:
            gap = min(FIRST_POLL * 2 ** min(row["attempts"], 12), MAX_POLL_GAP)
            await conn.execute(
                "UPDATE refunds SET attempts = attempts + 1, next_check_at = now() + $2::interval"
                " WHERE id = $1 AND status = 'pending'", row["id"], gap)
    return bool(recorded and recorded.applied)


def refund_view(row) -> dict:
    """A refund as the admin API and `a6pay` show it (no Razorpay ids)."""
    status = RefundStatus(row["status"])
    return {
        "id": row["id"],
        "booking_id": row["booking_id"],
        "amount": paise_to_rupees(row["amount_paise"]),
        "status": status.value,
        "final": is_terminal(status),
        "cause": row["cause"],
        "reason": row["reason"],
        "failure_reason": row["failure_reason"],
        "created_at": row["created_at"].isoformat(),
    }
