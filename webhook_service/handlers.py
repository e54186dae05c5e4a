"""Applying authentic webhook deliveries, each exactly once per event key: its row in
webhook_events, the state change it reports and the outbox event commit together.

Deliveries in flight together share one transaction (shared/coalesce.group_commit; alone,
a batch of one): RECORD_DELIVERIES moves every payment, records every delivery and tells
each one's outcome, so nothing is tried twice; a second captured payment for a paid booking
gets its full refund written in the same transaction (shared/duplicate_payments.py). A
refund, dispute or settlement delivery runs alone: its effect (shared/refunds.py,
shared/disputes.py, shared/settlements.py) first, then the same statement records it
(docs/write-paths.md).
"""

from __future__ import annotations

import functools
import logging

import asyncpg

from shared.capture_hold import capture_withheld
from shared.coalesce import Coalescer, group_commit, in_rounds
from shared.disputes import apply_dispute
from shared.duplicate_payments import refund_second_capture
from shared.outbox import outbox_transaction
from shared.outside_refunds import record_outside_refund
from shared.payment_state import PaymentOutcome, PaymentStatus, allowed_sources
from shared.payments import (
    BOOKING_STATUS,
    MOVE_PAYMENTS,
    capture_authorized,
    payments_moved,
    record_outcome,
)
from shared.razorpay_client import RazorpayClient
from shared.razorpay_map import refund_outcome
from shared.refunds import find_refund_for, record_refund_outcome
from shared.settlements import record_settlement
from shared.webhook_outcome import WebhookOutcome
from webhook_service.delivery import Delivery, EventKind

log = logging.getLogger(__name__)

# One input row per delivery. `known` is the outcome decided before the statement (an
# ignored event, an unusable payload, a refund's); the statement decides the others from
# the payment row it finds: `conflict` when another payment holds the booking's capture,
# this payment is captured on another order (the unique indexes would refuse the move), or
# the order was superseded by one for the booking's current price. The order's row is read
# FOR NO KEY UPDATE, the lock the move takes anyway: a delivery for an order another
# transaction is moving waits for it and then reads the row as that transaction left it, so
# a capture by another payment that committed meanwhile is a conflict (refunded below), not
# a stale report decided from the statement's snapshot.
# The arrays reach unnest through a MATERIALIZED CTE, where the planner cannot count them:
# every call's plan then costs the same, and PostgreSQL keeps one generic plan instead of
# planning each call anew (planning this statement costs more than running it). That plan
# may be made while the tables are still small, so each lookup is written as one index
# probe per row (a LATERAL subquery kept apart by OFFSET 0, a scalar subquery, the booking's
# other captures read through all its payments) rather than a join, an EXISTS or a partial
# index the planner could turn into a scan of the whole table.
RECORD_DELIVERIES = f"""
WITH arrays (a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12) AS MATERIALIZED (
    SELECT $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
           $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[]
), delivered AS (
    SELECT u.* FROM arrays, unnest(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12)
        WITH ORDINALITY AS u(event_key, event_type, order_id, payment_id, known, status,
                             amount_paise, currency, failure_code, failure_reason, allowed,
                             payload, n)
), facts AS (
    SELECT delivered.*, p.id AS payment_row,
           p.amount_paise <> delivered.amount_paise OR p.currency <> delivered.currency
               AS mismatch,
           coalesce(delivered.status = 'captured' AND (
               p.superseded_at IS NOT NULL
               OR (p.status = 'captured' AND p.razorpay_payment_id <> delivered.payment_id)
               OR (SELECT bool_or(c.status = 'captured') FROM payments c
                   WHERE c.booking_id = p.booking_id AND c.id <> p.id)
               OR EXISTS (SELECT FROM payments c
                          WHERE c.razorpay_payment_id = delivered.payment_id
                          AND c.status = 'captured' AND c.id <> p.id)), false) AS conflict,
           (SELECT true FROM webhook_events w WHERE w.event_key = delivered.event_key)
               IS NOT NULL AS seen
    FROM delivered LEFT JOIN LATERAL (
        SELECT * FROM payments WHERE razorpay_order_id = delivered.order_id
                                 AND delivered.known IS NULL OFFSET 0
        FOR NO KEY UPDATE) p ON true
), d AS (
    SELECT order_id, status, payment_id, amount_paise, currency, failure_code, failure_reason,
           string_to_array(allowed, ',') AS allowed, n
    FROM facts WHERE payment_row IS NOT NULL AND NOT seen AND NOT conflict
), moved AS ({MOVE_PAYMENTS}), recorded AS (
    INSERT INTO webhook_events (event_key, event_type, razorpay_order_id, razorpay_payment_id,
                                outcome, payload)
    SELECT f.event_key, f.event_type, f.order_id, f.payment_id, CASE
               WHEN f.known IS NOT NULL THEN f.known
               WHEN f.n IN (SELECT n FROM moved) THEN 'applied'
               WHEN f.payment_row IS NULL THEN 'unknown_order'
               WHEN f.status <> 'failed' AND f.mismatch THEN 'amount_mismatch'
               WHEN f.conflict THEN 'conflict'
               ELSE 'stale' END,
           f.payload::jsonb
    FROM facts f
    ON CONFLICT (event_key) DO NOTHING
    RETURNING event_key, outcome
)
SELECT r.outcome AS recorded, moved.*,{BOOKING_STATUS}
FROM facts f LEFT JOIN recorded r ON r.event_key = f.event_key
LEFT JOIN moved ON moved.n = f.n
ORDER BY f.n
"""


class TryAgain(Exception):
    """A delivery raced another transaction (a twin recording its key, a second capture for
    the booking) and was rolled back: answered 503, so Razorpay delivers it again."""


Batches = Coalescer[Delivery, WebhookOutcome]


def delivery_batches(pool: asyncpg.Pool) -> Batches:
    return group_commit(functools.partial(apply_deliveries, pool))


async def apply_delivery(pool: asyncpg.Pool, batches: Batches, delivery: Delivery
                         ) -> WebhookOutcome:
    """What became of the delivery; raises what the database raised (a 5xx: retried)."""
    effect = _EFFECT_ALONE.get(delivery.kind)
    if effect is not None:
        result = await _apply_alone(pool, delivery, effect)
    else:
        result = await batches.get(delivery)
    if result is WebhookOutcome.AMOUNT_MISMATCH:
        log.warning("webhook not applied: %s", result)  # a person should look
    return result


async def apply_deliveries(pool: asyncpg.Pool, deliveries: list[Delivery]
                           ) -> list[WebhookOutcome]:
    """One transaction for the deliveries, each with its outcome, in order; a statement
    holds at most one per event key and per order."""
    async with outbox_transaction(pool) as conn:
        return await in_rounds(deliveries, functools.partial(record_deliveries, conn),
                               lambda d: d.key, lambda d: d.order_id or d.key,
                               order=lambda d: d.order_id or "")


async def record_deliveries(conn: asyncpg.Connection, deliveries: list[Delivery],
                            known: WebhookOutcome | None = None) -> list[WebhookOutcome]:
    """RECORD_DELIVERIES and what follows the payments it moved, in the caller's
    transaction; `known` overrides what a (refund) delivery's payload decides."""
    columns = [(d.key, d.event, d.order_id, d.payment_id, known or d.known,
                *_move(d), d.payload) for d in deliveries]
    try:
        rows = await conn.fetch(RECORD_DELIVERIES, *map(list, zip(*columns, strict=True)))
    except asyncpg.UniqueViolationError as exc:
        raise TryAgain from exc
    moved = [(row, d.payment, d.correlation_id)
             for row, d in zip(rows, deliveries, strict=True) if row["id"] is not None]
    if any(row["recorded"] is None and row["id"] is not None for row in rows):
        raise TryAgain  # a twin recorded the key meanwhile: this move is rolled back
    await payments_moved(conn, moved, "webhook")
    outcomes = [WebhookOutcome(row["recorded"]) if row["recorded"] else WebhookOutcome.DUPLICATE
                for row in rows]
    for outcome, d in zip(outcomes, deliveries, strict=True):
        if outcome is WebhookOutcome.CONFLICT:  # charged twice: the second payment goes back
            await refund_second_capture(conn, d.payment, "webhook", d.correlation_id)
    return outcomes


def _move(d: Delivery) -> tuple:
    """Status, amount, currency, failure code and reason, and `allowed` comma-separated (an
    array cannot hold one array per row)."""
    p = d.payment
    if p is None:
        return None, None, None, None, None, None
    return (p.status.value, p.amount_paise, p.currency, p.error_code,
            (p.error_description or "")[:500] or None, _ALLOWED[p.status])


_ALLOWED = {status: ",".join(allowed_sources(status)) for status in PaymentStatus}


class _SeenBefore(Exception):
    """Rolls a lone delivery's effect back: its event key was recorded before."""


async def _apply_alone(pool: asyncpg.Pool, delivery: Delivery, effect) -> WebhookOutcome:
    try:
        async with outbox_transaction(pool) as conn:
            result = await effect(conn, delivery)
            [recorded] = await record_deliveries(conn, [delivery], known=result)
            if recorded is WebhookOutcome.DUPLICATE:
                raise _SeenBefore
    except _SeenBefore:
        return WebhookOutcome.DUPLICATE
    return recorded


async def _refund_effect(conn: asyncpg.Connection, delivery: Delivery) -> WebhookOutcome:
    """refund.created / refund.processed / refund.failed through the refund state machine."""
    if delivery.refund is None:
        return WebhookOutcome.UNUSABLE_PAYLOAD
    ours = await find_refund_for(conn, delivery.refund)
    if ours is None:  # made at Razorpay without us (its dashboard): recorded and counted
        return WebhookOutcome(await record_outside_refund(
            conn, delivery.refund, delivery.refund_target, "webhook", delivery.correlation_id))
    outcome = refund_outcome(delivery.refund, ours["id"], delivery.refund_target)
    if outcome is None:
        return WebhookOutcome.UNUSABLE_PAYLOAD
    recorded = await record_refund_outcome(conn, outcome, "webhook", delivery.correlation_id)
    return WebhookOutcome.APPLIED if recorded.applied else WebhookOutcome.STALE


async def _dispute_effect(conn: asyncpg.Connection, delivery: Delivery) -> WebhookOutcome:
    """payment.dispute.* through the dispute state machine, in any order, before or after
    the capture it is about."""
    if delivery.dispute is None:
        return WebhookOutcome.UNUSABLE_PAYLOAD
    result, _ = await apply_dispute(conn, delivery.dispute)
    return WebhookOutcome(result)


async def _settlement_effect(conn: asyncpg.Connection, delivery: Delivery) -> WebhookOutcome:
    """The settlement is recorded `pending`; order_service's reconciler fetches its items
    (order_service/settlements.py), which takes longer than Razorpay waits for an answer."""
    if delivery.settlement is None:
        return WebhookOutcome.UNUSABLE_PAYLOAD
    new = await record_settlement(conn, delivery.settlement, "webhook")
    return WebhookOutcome.APPLIED if new else WebhookOutcome.STALE


_EFFECT_ALONE = {EventKind.REFUND: _refund_effect, EventKind.DISPUTE: _dispute_effect,
                 EventKind.SETTLEMENT: _settlement_effect}


async def capture_and_record(
    pool: asyncpg.Pool, razorpay: RazorpayClient, authorized: PaymentOutcome
) -> None:
    """With capture on, an authorized payment is captured by us; Razorpay's answer goes
    through the state machine like any other report, and a capture for a booking another
    payment has paid meanwhile is refunded, as a captured delivery's conflict is. Failures
    are left to reconciliation."""
    if await capture_withheld(pool, authorized.order_id):  # a capture it would not keep
        return
    captured = await capture_authorized(razorpay, authorized)
    if captured is None:
        return
    async with outbox_transaction(pool) as conn:
        if (await record_outcome(conn, captured, "webhook", None)).conflict:
            await refund_second_capture(conn, captured, "webhook", None)
