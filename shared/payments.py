"""Applies the payment state machine in SQL. Verify, webhook and reconciliation all come here.

One UPDATE moves payments (MOVE_PAYMENTS: forward-only, amount-checked), for one report
(`record_outcome`, inside the caller's transaction) or for the webhook's batches; only a
row it changed gets an outbox event. A duplicate or stale report changes nothing and emits
nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from shared.booking_state import BookingStatus
from shared.db import savepoint
from shared.events import Event, PaymentCaptured, PaymentFailed
from shared.logging import log_ctx
from shared.outbox import add_events
from shared.payment_state import PaymentOutcome, PaymentStatus, allowed_sources
from shared.razorpay_client import RazorpayClient, RazorpayError
from shared.razorpay_map import outcome_from_payment
from shared.refunds import RefundWhileDisputed, create_refund

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    applied: bool  # False: duplicate, stale, or refused by the amount check / invariants
    payment: asyncpg.Record | None  # the row after the attempt; None for an unknown order
    conflict: bool = False  # another payment holds this booking's or this order's capture,
    # or the order was superseded by one for the booking's current price: a capture it does
    # not keep


# The transition, one text for every statement that moves payments. It reads its input
# rows from a relation named `d` with the columns (order_id, status, payment_id,
# amount_paise, currency, failure_code, failure_reason, allowed, n): `allowed` the statuses
# the state machine lets `status` be entered from, `n` the row's position, returned with
# the moved row. An order made for an earlier price of its booking (superseded) never
# becomes the booking's capture: a payment on it is refunded (shared/duplicate_payments.py).
MOVE_PAYMENTS = """
    UPDATE payments SET
        status = d.status,
        razorpay_payment_id = d.payment_id,
        failure_code = CASE WHEN d.status = 'failed' THEN d.failure_code END,
        failure_reason = CASE WHEN d.status = 'failed' THEN d.failure_reason END,
        captured_at = CASE WHEN d.status = 'captured' THEN now() ELSE payments.captured_at END,
        next_reconcile_at = CASE WHEN d.status = 'captured' THEN NULL
                                 ELSE payments.next_reconcile_at END,
        second_look_due = d.status = 'captured',
        updated_at = now()
    FROM d
    WHERE payments.razorpay_order_id = d.order_id
      AND payments.status = ANY(d.allowed)
      AND (d.status = 'failed'
           OR (payments.amount_paise = d.amount_paise AND payments.currency = d.currency))
      AND (d.status <> 'captured' OR payments.superseded_at IS NULL)
    RETURNING payments.*, d.n
"""
# A column for a statement that selects FROM moved (MOVE_PAYMENTS's rows): a captured
# payment's booking status, read FOR SHARE in the same statement (one round trip, not two).
# It waits for a cancellation in flight, so either that cancellation sees this capture or
# we see it cancelled (and refund, below).
BOOKING_STATUS = """
       CASE WHEN moved.status = 'captured' THEN
           (SELECT b.status FROM bookings b WHERE b.id = moved.booking_id FOR SHARE)
       END AS booking_status"""
RECORD_OUTCOME = f"""
WITH d AS (
    SELECT $1::text AS order_id, $2::text AS status, $3::text AS payment_id,
           $4::text[] AS allowed, $5::text AS failure_code, $6::text AS failure_reason,
           $7::bigint AS amount_paise, $8::text AS currency, 1 AS n
), moved AS ({MOVE_PAYMENTS})
SELECT moved.*,{BOOKING_STATUS} FROM moved
"""

# Only a capture can break a unique index (another payment already captured for the
# booking, or this payment for another order). The UPDATE then runs after a savepoint, so
# the violation does not abort the caller's transaction; the savepoint is never released
# (the caller's COMMIT ends it): RELEASE would be one more round trip for nothing.


async def record_outcome(
    conn: asyncpg.Connection, outcome: PaymentOutcome, source: str, correlation_id: str | None,
) -> Recorded:
    """One report about one payment, inside the caller's transaction."""
    if outcome.status is PaymentStatus.CREATED:
        return Recorded(False, await find_by_order(conn, outcome.order_id))
    guarded = outcome.status is PaymentStatus.CAPTURED
    if guarded:
        await conn.execute("SAVEPOINT record_outcome")
    try:
        row = await conn.fetchrow(
            RECORD_OUTCOME,
            outcome.order_id,
            outcome.status.value,
            outcome.payment_id,
            allowed_sources(outcome.status),
            outcome.error_code,
            (outcome.error_description or "")[:500] or None,
            outcome.amount_paise,
            outcome.currency,
        )
    except asyncpg.UniqueViolationError:
        if not guarded:
            raise
        await conn.execute("ROLLBACK TO SAVEPOINT record_outcome")
        return Recorded(False, await find_by_order(conn, outcome.order_id), conflict=True)
    if row is None:
        # A new statement: it sees what a transaction the move waited for committed.
        found = await find_by_order(conn, outcome.order_id)
        return Recorded(False, found, conflict=guarded and _not_kept(found, outcome.payment_id))
    await payments_moved(conn, [(row, outcome, correlation_id)], source)
    return Recorded(True, row)


def _not_kept(order: asyncpg.Record | None, payment_id: str) -> bool:
    """Whether the order would not keep a capture of `payment_id`: it was superseded, or
    another payment is its capture already (the move then matches nothing)."""
    return order is not None and (
        order["superseded_at"] is not None
        or (order["status"] == PaymentStatus.CAPTURED
            and order["razorpay_payment_id"] != payment_id))


async def _refund_if_cancelled(conn, payment, source: str, correlation_id) -> None:
    """A payment captured after its booking was cancelled is refunded in full, once (a
    unique index says once). BOOKING_STATUS read the booking's status FOR SHARE.

    A dispute opened on it first (its webhook can come before the capture's) forbids the
    refund: the capture is still recorded, so the dispute can be linked and answered, and
    an operator settles the money once the dispute is decided."""
    if payment["booking_status"] != BookingStatus.CANCELLED:
        return
    try:
        async with savepoint(conn):
            await create_refund(conn, payment, payment["amount_paise"],
                                cause="captured_after_cancellation", producer=source,
                                correlation_id=correlation_id)
        log.warning("payment captured after cancellation: refunding it",
                    extra=log_ctx(booking_id=payment["booking_id"]))
    except asyncpg.UniqueViolationError:
        pass  # already refunding it
    except RefundWhileDisputed:
        log.error("ALARM payment captured after cancellation is disputed: not refunded",
                  extra=log_ctx(booking_id=payment["booking_id"],
                                alarm="cancelled_capture_disputed"))


def _event(row, outcome: PaymentOutcome, source: str) -> Event | None:
    """What a transition that moved `row` tells the other services; None for authorized,
    internal progress that nobody downstream acts on."""
    common = {"booking_id": row["booking_id"], "customer_id": row["customer_id"],
              "order_id": row["razorpay_order_id"], "payment_id": outcome.payment_id,
              "source": source}
    if outcome.status is PaymentStatus.CAPTURED:
        return PaymentCaptured(**common, amount_paise=row["amount_paise"])
    if outcome.status is PaymentStatus.FAILED:
        return PaymentFailed(**common, error_code=outcome.error_code,
                             error_description=outcome.error_description)
    return None


async def payments_moved(
    conn: asyncpg.Connection, moved: list[tuple[asyncpg.Record, PaymentOutcome, str | None]],
    source: str,
) -> None:
    """What follows a move, for the rows MOVE_PAYMENTS moved (each with its outcome and
    correlation id), with BOOKING_STATUS: their events in one round trip, and the refund
    of a payment captured for a booking cancelled meanwhile."""
    events = [(event, correlation_id) for row, outcome, correlation_id in moved
              if (event := _event(row, outcome, source)) is not None]
    if events:
        await add_events(conn, events, source)
    for row, outcome, correlation_id in moved:
        if outcome.status is PaymentStatus.CAPTURED:
            await _refund_if_cancelled(conn, row, source, correlation_id)


async def capture_authorized(
    razorpay: RazorpayClient, authorized: PaymentOutcome
) -> PaymentOutcome | None:
    """With capture on: capture an authorized payment at Razorpay and say what it is now;
    None when Razorpay can't be reached or answers about another order (left to retry)."""
    try:
        payment = await razorpay.capture_or_fetch(authorized.payment_id, authorized.amount_paise)
    except RazorpayError as exc:
        log.warning("capture of an authorized payment failed: %s", type(exc).__name__)
        return None
    captured = outcome_from_payment(payment)
    return captured if captured is not None and captured.order_id == authorized.order_id else None


PAYMENT_BY_ORDER = "SELECT * FROM payments WHERE razorpay_order_id = $1"


async def find_by_order(conn: asyncpg.Connection, order_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(PAYMENT_BY_ORDER, order_id)
