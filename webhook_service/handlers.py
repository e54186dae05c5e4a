"""Applying one authentic webhook delivery, exactly once per event key, in one transaction:
the delivery row, the state change and the outbox event commit together or not at all."""

from __future__ import annotations

import hashlib
import logging

import asyncpg

from shared.coalesce import Coalescer
from shared.http import DB_ERRORS
from shared.outbox import outbox_transaction
from shared.payment_state import PaymentOutcome, PaymentStatus
from shared.payments import AlsoWhenApplied, Recorded, capture_authorized, record_outcome
from shared.razorpay_client import RazorpayClient
from shared.razorpay_map import (
    event_target,
    outcome_from_payment,
    refund_event_target,
    refund_outcome,
)
from shared.refunds import find_refund_for, record_refund_outcome
from shared.settlements import SETTLEMENT_PROCESSED, record_settlement_event
from webhook_service.capture_batch import Capture

log = logging.getLogger(__name__)

INSERT_DELIVERY = (
    "INSERT INTO webhook_events (event_key, event_type, razorpay_order_id,"
    " razorpay_payment_id, outcome, payload) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (event_key) DO NOTHING RETURNING true"
)
# The same row, written by the state change's own statement when it applies (the usual
# case: one round trip fewer); its parameters follow the state change's eight.
INSERT_APPLIED_DELIVERY = (
    "INSERT INTO webhook_events (event_key, event_type, razorpay_order_id,"
    " razorpay_payment_id, outcome, payload) SELECT $9, $10, $11, $12, 'applied', $13"
    " FROM moved ON CONFLICT (event_key) DO NOTHING RETURNING true"
)


def event_key(header_id: str | None, payload: dict, raw: bytes) -> str:
    """Razorpay's X-Razorpay-Event-Id, or a key that is stable across redeliveries."""
    if header_id:
        return "id:" + header_id
    entity = _payment_entity(payload) or {}
    parts = [str(payload.get("event")), str(entity.get("id")), str(entity.get("order_id")),
             str(payload.get("created_at"))]
    refund = _refund_entity(payload)
    if refund is not None:
        parts.append(str(refund.get("id")))
    if payload.get("created_at") is None:
        parts.append(hashlib.sha256(raw).hexdigest())
    return "derived:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


def _payment_entity(payload: dict) -> dict | None:
    try:
        entity = payload["payload"]["payment"]["entity"]
    except (KeyError, TypeError):
        return None
    return entity if isinstance(entity, dict) else None


def _refund_entity(payload: dict) -> dict | None:
    try:
        entity = payload["payload"]["refund"]["entity"]
    except (KeyError, TypeError):
        return None
    return entity if isinstance(entity, dict) else None


def outcome_of(payload: dict) -> PaymentOutcome | None:
    """What the event says happened, in our vocabulary; None if it isn't a payment event."""
    target = event_target(payload.get("event"))
    entity = _payment_entity(payload)
    if target is None or entity is None:
        return None
    return outcome_from_payment({**entity, "status": target.value})


class _SeenBefore(Exception):
    """Rolls a delivery's transaction back: its event key was recorded (and applied) before."""


async def apply_webhook(
    pool: asyncpg.Pool, key: str, payload: dict, correlation_id: str | None,
    captures: Coalescer[Capture, str | None] | None = None,
) -> str:
    """Returns what happened: applied / duplicate / ignored_event / unknown_order / stale /
    amount_mismatch / conflict / unusable_payload. With `captures`, a capture first tries
    to commit with the others in flight (webhook_service/capture_batch.py)."""
    outcome = outcome_of(payload)
    if captures is not None and outcome is not None and (
            outcome.status is PaymentStatus.CAPTURED):
        try:
            result = await captures.get(Capture(key, outcome, delivery_columns(payload),
                                                payload, correlation_id))
        except DB_ERRORS:
            raise  # the database is away: this delivery's answer (503), alone or not
        except Exception:
            result = None  # the batch failed: alone, the delivery shows whether it was this one
        if result is not None:
            return result
    try:
        result = await _apply_once(pool, key, payload, outcome, correlation_id, guarded=False)
    except asyncpg.UniqueViolationError:
        # A capture another payment of the booking already holds (or a payment that settled
        # another order): all rolled back; again, behind the savepoint that records it.
        result = await _apply_once(pool, key, payload, outcome, correlation_id, guarded=True)
    if result in ("conflict", "amount_mismatch"):
        log.warning("webhook not applied: %s", result)  # a person should look (refund?)
    return result


def delivery_columns(payload: dict) -> tuple[str, str | None, str | None]:
    """The delivery row's event name, order id and payment id, cut to their columns."""
    entity = _payment_entity(payload) or {}
    order_id, payment_id = (v if isinstance(v, str) else None
                            for v in (entity.get("order_id"), entity.get("id")))
    return str(payload.get("event"))[:100], order_id and order_id[:64], (
        payment_id and payment_id[:64])


async def _apply_once(pool, key: str, payload: dict, outcome: PaymentOutcome | None,
                      correlation_id, *, guarded: bool) -> str:
    delivery = (key, *delivery_columns(payload))
    try:
        async with outbox_transaction(pool) as conn:
            result, first_time = await _apply(conn, payload, outcome, correlation_id, guarded,
                                              AlsoWhenApplied(INSERT_APPLIED_DELIVERY,
                                                              (*delivery, payload)))
            if first_time is None:  # not recorded with the state change
                # The delivery is recorded after it is applied, outcome included.
                first_time = await conn.fetchval(INSERT_DELIVERY, *delivery, result, payload)
            # A key recorded before rolls it all back (a racing twin waits on the key's
            # unique index, then lands here).
            if not first_time:
                raise _SeenBefore
    except _SeenBefore:
        return "duplicate"
    return result


async def _apply(conn, payload: dict, outcome: PaymentOutcome | None, correlation_id,
                 guarded: bool, delivery: AlsoWhenApplied) -> tuple[str, bool | None]:
    """(what happened, whether the delivery was recorded as new with it; None: not yet)."""
    if refund_event_target(payload.get("event")) is not None:
        return await _apply_refund(conn, payload, correlation_id), None
    # Settlements: recorded here, reconciled by order_service (shared/settlements.py).
    if payload.get("event") == SETTLEMENT_PROCESSED:
        return await record_settlement_event(conn, payload), None
    if event_target(payload.get("event")) is None:
        return "ignored_event", None
    if outcome is None:
        return "unusable_payload", None
    recorded = await record_outcome(conn, outcome, "webhook", correlation_id,
                                    savepoint=guarded, also=delivery)
    if recorded.applied:
        return "applied", recorded.also_done
    return _not_applied(outcome, recorded), None


def _not_applied(outcome: PaymentOutcome, recorded: Recorded) -> str:
    if recorded.payment is None:
        return "unknown_order"
    if recorded.conflict:
        return "conflict"
    row = recorded.payment
    if outcome.status is not PaymentStatus.FAILED and (
        row["amount_paise"] != outcome.amount_paise or row["currency"] != outcome.currency
    ):
        return "amount_mismatch"
    if (
        outcome.status is PaymentStatus.CAPTURED
        and row["status"] == PaymentStatus.CAPTURED
        and row["razorpay_payment_id"] != outcome.payment_id
    ):
        return "conflict"  # a second payment captured for a paid booking: needs a refund
    return "stale"


async def _apply_refund(conn, payload: dict, correlation_id) -> str:
    """refund.created / refund.processed / refund.failed through the refund state machine."""
    entity = _refund_entity(payload)
    if entity is None:
        return "unusable_payload"
    ours = await find_refund_for(conn, entity)
    if ours is None:
        return "unknown_refund"  # e.g. made in Razorpay's dashboard: recorded, not applied
    outcome = refund_outcome(entity, ours["id"], refund_event_target(payload.get("event")))
    if outcome is None:
        return "unusable_payload"
    recorded = await record_refund_outcome(conn, outcome, "webhook", correlation_id)
    return "applied" if recorded.applied else "stale"


async def capture_and_record(
    pool: asyncpg.Pool, razorpay: RazorpayClient, outcome: PaymentOutcome
) -> None:
    """With capture on, an authorized payment is captured by us; Razorpay's answer goes
    through the state machine like any other report. Failures are left to reconciliation."""
    captured = await capture_authorized(razorpay, outcome)
    if captured is None:
        return
    async with outbox_transaction(pool) as conn:
        await record_outcome(conn, captured, "webhook", None)
