"""Applies the payment state machine in SQL. Verify, webhook and reconciliation all come here.

`record_outcome` runs inside the caller's transaction: one conditional UPDATE (forward-only,
amount-checked) and, only if it changed the row, one outbox event. A duplicate or stale
report changes nothing and emits nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from shared.events import Event, PaymentCaptured, PaymentFailed
from shared.logging import log_ctx
from shared.outbox import add_event, add_events
from shared.payment_state import PaymentOutcome, PaymentStatus, allowed_sources
from shared.razorpay_client import RazorpayClient, RazorpayError
from shared.razorpay_map import outcome_from_payment
from shared.refunds import create_refund

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    applied: bool  # False: duplicate, stale, or refused by the amount check / invariants
    payment: asyncpg.Record | None  # the row after the attempt; None for an unknown order
    conflict: bool = False  # another payment already holds this booking's capture
    also_done: bool | None = None  # what `also` returned; None: it did not run


@dataclass(frozen=True)
class AlsoWhenApplied:
    """One more INSERT in the transition's own statement (a round trip fewer), run only when
    the transition applies: it selects FROM moved (the changed row), numbers its parameters
    from $9, and ends in RETURNING true (no row back: False)."""

    sql: str
    args: tuple


# The transition's SET clause, one text for the single form and the batched one below.
_SET = """
        status = {status},
        razorpay_payment_id = {payment_id},
        failure_code = CASE WHEN {status} = 'failed' THEN {failure_code} ELSE NULL END,
        failure_reason = CASE WHEN {status} = 'failed' THEN {failure_reason} ELSE NULL END,
        captured_at = CASE WHEN {status} = 'captured' THEN now() ELSE captured_at END,
        next_reconcile_at = CASE WHEN {status} = 'captured' THEN NULL ELSE next_reconcile_at END,
        updated_at = now()"""
_MOVED = f"""
    UPDATE payments SET{_SET.format(status="$2", payment_id="$3", failure_code="$5",
                                    failure_reason="$6")}
    WHERE razorpay_order_id = $1
      AND status = ANY($4::text[])
      AND ($2 = 'failed' OR (amount_paise = $7 AND currency = $8))
    RETURNING *
"""
# Many captures in one statement (webhook_service/capture_batch.py): the same transition, one
# input row each ($1 order ids, $2 payment ids, $3 amounts, $4 currencies; $5 the sources),
# every moved row carrying its input's position `n` (from 1).
_CAPTURES_MOVED = f"""
    UPDATE payments SET{_SET.format(status="'captured'", payment_id="d.payment_in",
                                    failure_code="NULL", failure_reason="NULL")}
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
         WITH ORDINALITY AS d(order_in, payment_in, amount_in, currency_in, n)
    WHERE razorpay_order_id = d.order_in
      AND status = ANY($5::text[])
      AND amount_paise = d.amount_in AND currency = d.currency_in
    RETURNING payments.*, d.n
"""
# The booking's status comes back with a capture, read FOR SHARE in the same statement (one
# round trip, not two): it waits for a cancellation in flight, so either that cancellation
# sees this capture or we see it cancelled (and refund, below).
_BOOKING_STATUS = """
       CASE WHEN moved.status = 'captured' THEN
           (SELECT b.status FROM bookings b WHERE b.id = moved.booking_id FOR SHARE)
       END AS booking_status"""
RECORD_OUTCOME = f"WITH moved AS ({_MOVED}) SELECT moved.*,{_BOOKING_STATUS} FROM moved"


def record_outcome_and(also_sql: str) -> str:
    """RECORD_OUTCOME with `AlsoWhenApplied.sql` as a second data-modifying CTE."""
    return (f"WITH moved AS ({_MOVED}), also AS ({also_sql})"
            f" SELECT moved.*,{_BOOKING_STATUS}, EXISTS (SELECT FROM also) AS also_done"
            " FROM moved")


def record_captures_and(also_sql: str) -> str:
    """Many captures at once, with `also_sql` as a second data-modifying CTE that selects
    FROM moved (by `n`) and numbers its parameters from $6. Each row says how many rows
    `also` wrote (`also_count`), so the caller sees whether it wrote one for every row."""
    return (f"WITH moved AS ({_CAPTURES_MOVED}), also AS ({also_sql})"
            f" SELECT moved.*,{_BOOKING_STATUS}, (SELECT count(*) FROM also) AS also_count"
            " FROM moved")


# Only a capture can break a unique index (another payment already captured for the
# booking, or this payment for another order). The UPDATE then runs after a savepoint, so
# the violation does not abort the caller's transaction; the savepoint is never released
# (the caller's COMMIT ends it): RELEASE would be one more round trip for nothing.
SAVEPOINT = "SAVEPOINT record_outcome"
ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT record_outcome"


async def record_outcome(
    conn: asyncpg.Connection, outcome: PaymentOutcome, source: str, correlation_id: str | None,
    *, savepoint: bool = True, also: AlsoWhenApplied | None = None,
) -> Recorded:
    """`savepoint=False` is for a caller that runs its whole transaction again on a
    UniqueViolationError (with the savepoint then): one round trip fewer on every capture."""
    if outcome.status is PaymentStatus.CREATED:
        return Recorded(False, await find_by_order(conn, outcome.order_id))
    sources = [s.value for s in allowed_sources(outcome.status)]
    guarded = savepoint and outcome.status is PaymentStatus.CAPTURED
    if guarded:
        await conn.execute(SAVEPOINT)
    try:
        row = await conn.fetchrow(
            record_outcome_and(also.sql) if also else RECORD_OUTCOME,
            outcome.order_id,
            outcome.status.value,
            outcome.payment_id,
            sources,
            outcome.error_code,
            (outcome.error_description or "")[:500] or None,
            outcome.amount_paise,
            outcome.currency,
            *(also.args if also else ()),
        )
    except asyncpg.UniqueViolationError:
        if not guarded:
            raise
        await conn.execute(ROLLBACK_TO_SAVEPOINT)
        return Recorded(False, await find_by_order(conn, outcome.order_id), conflict=True)
    if row is None:
        return Recorded(False, await find_by_order(conn, outcome.order_id))
    await _emit(conn, row, outcome, source, correlation_id)
    if outcome.status is PaymentStatus.CAPTURED:
        await _refund_if_cancelled(conn, row, source, correlation_id)
    return Recorded(True, row, also_done=row["also_done"] if also else None)


async def _refund_if_cancelled(conn, payment, source: str, correlation_id) -> None:
    """A payment captured after its booking was cancelled is refunded in full, once (a
    unique index says once). RECORD_OUTCOME read the booking's status FOR SHARE."""
    if payment["booking_status"] != "cancelled":
        return
    log.warning("payment captured after cancellation: refunding it",
                extra=log_ctx(booking_id=payment["booking_id"]))
    try:
        async with conn.transaction():
            await create_refund(conn, payment, payment["amount_paise"],
                                cause="captured_after_cancellation", producer=source,
                                correlation_id=correlation_id)
    except asyncpg.UniqueViolationError:
        pass  # already refunding it


async def _emit(conn, row, outcome: PaymentOutcome, source: str, correlation_id) -> None:
    event = _event(row, outcome, source)
    if event is not None:
        await add_event(conn, event, source, correlation_id)


def _event(row, outcome: PaymentOutcome, source: str) -> Event | None:
    """What a transition that moved `row` tells the other services; None for authorized,
    internal progress that nobody downstream acts on."""
    if outcome.status is PaymentStatus.CAPTURED:
        return PaymentCaptured(
            booking_id=row["booking_id"],
            customer_id=row["customer_id"],
            order_id=row["razorpay_order_id"],
            payment_id=outcome.payment_id,
            amount_paise=row["amount_paise"],
            source=source,
        )
    if outcome.status is PaymentStatus.FAILED:
        return PaymentFailed(
            booking_id=row["booking_id"],
            customer_id=row["customer_id"],
            order_id=row["razorpay_order_id"],
            payment_id=outcome.payment_id,
            error_code=outcome.error_code,
            error_description=outcome.error_description,
            source=source,
        )
    return None


async def captures_recorded(
    conn: asyncpg.Connection, moved: list[tuple[asyncpg.Record, PaymentOutcome, str | None]],
    source: str,
) -> None:
    """What `record_outcome` does after a capture moves its row, for the rows that
    `record_captures_and` moved (with each one's outcome and correlation id): their events
    in one round trip, and the refund of any booking cancelled meanwhile."""
    await add_events(conn, [(_event(row, outcome, source), correlation_id)
                            for row, outcome, correlation_id in moved], source)
    for row, _, correlation_id in moved:
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
