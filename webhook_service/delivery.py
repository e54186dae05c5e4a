"""A webhook delivery, parsed once right after its signature check into the value the rest
of the path takes: nothing below the view reads Razorpay's payload again."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum

from shared.disputes import DisputeReport, is_dispute_event, report_of_webhook
from shared.payment_state import PaymentOutcome
from shared.razorpay_map import event_target, outcome_from_payment, refund_event_target
from shared.refund_state import RefundStatus
from shared.schemas import UNSTORABLE_CHARS
from shared.settlements import SETTLEMENT_PROCESSED, Settlement, settlement_of_event
from shared.webhook_outcome import WebhookOutcome


class EventKind(StrEnum):
    PAYMENT = "payment"  # moves a payment: payment.authorized / captured / failed, order.paid
    REFUND = "refund"  # moves a refund (ours or one made at Razorpay): refund.*
    DISPUTE = "dispute"  # moves a chargeback: payment.dispute.*
    SETTLEMENT = "settlement"  # a payout to record and reconcile: settlement.processed
    OTHER = "other"  # acknowledged and recorded, nothing else


class MalformedDelivery(ValueError):
    """Not a JSON object with an event name."""


@dataclass(frozen=True, eq=False)
class Delivery:
    key: str  # X-Razorpay-Event-Id, or a key stable across redeliveries
    event: str  # Razorpay's event name, as recorded
    kind: EventKind
    order_id: str | None  # the payment entity's, as recorded
    payment_id: str | None
    payment: PaymentOutcome | None  # what a PAYMENT event says happened; None if unusable
    refund: dict | None  # a REFUND event's refund entity (shared/refunds.py reads it)
    refund_target: RefundStatus | None
    dispute: DisputeReport | None  # a DISPUTE event's report; None if unusable
    settlement: Settlement | None  # a SETTLEMENT event's settlement; None if unusable
    known: WebhookOutcome | None  # the outcome the payload alone decides, if it does
    payload: str  # the delivery as JSON text, kept in webhook_events
    correlation_id: str | None = None


def parse_delivery(raw: bytes, event_id: str | None, correlation_id: str | None) -> Delivery:
    """The signed bytes as a Delivery; MalformedDelivery if they are no webhook (JSON is
    UTF-8 between systems: the text itself is what webhook_events keeps)."""
    try:
        text = raw.decode()
        payload = json.loads(text)
    except (ValueError, RecursionError):
        raise MalformedDelivery from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        raise MalformedDelivery
    if _MAY_BE_UNSTORABLE.search(text):  # PostgreSQL stores neither: never a lasting 5xx
        payload = _storable(payload)
        text = json.dumps(payload, ensure_ascii=False)
    event = payload["event"]
    entities = payload.get("payload")
    payment = _entity(entities, "payment")
    refund = _entity(entities, "refund")
    target, refund_target = event_target(event), refund_event_target(event)
    kind = (EventKind.PAYMENT if target else EventKind.REFUND if refund_target
            else EventKind.DISPUTE if is_dispute_event(event)
            else EventKind.SETTLEMENT if event == SETTLEMENT_PROCESSED else EventKind.OTHER)
    order_id, payment_id = (v if isinstance(v, str) else None
                            for v in ((payment or {}).get("order_id"), (payment or {}).get("id")))
    outcome = None
    if target is not None and payment is not None:
        outcome = outcome_from_payment({**payment, "status": target.value})
    known = (WebhookOutcome.IGNORED_EVENT if kind is EventKind.OTHER
             else WebhookOutcome.UNUSABLE_PAYLOAD if target and outcome is None else None)
    return Delivery(
        key=_event_key(event_id, payload, payment, refund, raw),
        event=event[:100],
        kind=kind,
        order_id=order_id and order_id[:64],
        payment_id=payment_id and payment_id[:64],
        payment=outcome,
        refund=refund if kind is EventKind.REFUND else None,
        refund_target=refund_target,
        dispute=report_of_webhook(payload) if kind is EventKind.DISPUTE else None,
        settlement=settlement_of_event(payload) if kind is EventKind.SETTLEMENT else None,
        known=known,
        payload=text,
        correlation_id=correlation_id,
    )


# The escapes JSON writes NUL and surrogates with: only a text that has one needs the walk.
_MAY_BE_UNSTORABLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _storable(value):
    """`value` with each NUL and unpaired surrogate in its strings (keys too) replaced by
    U+FFFD, as UTF-8 decoders replace what they cannot represent. Razorpay carries text that
    customers wrote (a payment's notes and description)."""
    if isinstance(value, str):
        return UNSTORABLE_CHARS.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _entity(entities: object, name: str) -> dict | None:
    holder = entities.get(name) if isinstance(entities, dict) else None
    entity = holder.get("entity") if isinstance(holder, dict) else None
    return entity if isinstance(entity, dict) else None


def _event_key(event_id: str | None, payload: dict, payment: dict | None, refund: dict | None,
               raw: bytes) -> str:
    """Razorpay's X-Razorpay-Event-Id, or a key that is stable across redeliveries."""
    if event_id:
        return "id:" + event_id
    payment = payment or {}
    parts = [str(payload.get("event")), str(payment.get("id")), str(payment.get("order_id")),
             str(payload.get("created_at"))]
    for other in (refund, _entity(payload.get("payload"), "dispute"),
                  _entity(payload.get("payload"), "settlement")):
        if other is not None:
            parts.append(str(other.get("id")))
    if payload.get("created_at") is None:
        parts.append(hashlib.sha256(raw).hexdigest())
    return "derived:" + hashlib.sha256("|".join(parts).encode()).hexdigest()
