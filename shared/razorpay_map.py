"""Razorpay's vocabulary, turned into ours at the edge. Unknown values map to None."""

from __future__ import annotations

from shared.money import whole_number
from shared.payment_state import PaymentOutcome, PaymentStatus, rank
from shared.refund_state import RefundOutcome, RefundStatus

# Razorpay payment entity `status`
_PAYMENT_STATUS = {
    "created": PaymentStatus.CREATED,
    "authorized": PaymentStatus.AUTHORIZED,
    "captured": PaymentStatus.CAPTURED,
    "failed": PaymentStatus.FAILED,
    # "refunded" is deliberately absent: Razorpay also auto-refunds payments that were
    # authorized but never captured, and a refunded payment is no money of ours either way.
}

# Webhook events that move a payment, and where they move it.
_EVENT_TARGET = {
    "payment.authorized": PaymentStatus.AUTHORIZED,
    "payment.captured": PaymentStatus.CAPTURED,
    "order.paid": PaymentStatus.CAPTURED,
    "payment.failed": PaymentStatus.FAILED,
}


def payment_status(razorpay_status: str | None) -> PaymentStatus | None:
    return _PAYMENT_STATUS.get(razorpay_status or "")


def event_target(event: str | None) -> PaymentStatus | None:
    return _EVENT_TARGET.get(event or "")


# Razorpay refund entity `status`, and the webhook events about refunds.
_REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "processed": RefundStatus.PROCESSED,
    "failed": RefundStatus.FAILED,
}
_REFUND_EVENT_TARGET = {
    "refund.created": RefundStatus.PENDING,
    "refund.processed": RefundStatus.PROCESSED,
    "refund.failed": RefundStatus.FAILED,
}


def refund_status(razorpay_status: str | None) -> RefundStatus | None:
    return _REFUND_STATUS.get(razorpay_status or "")


def refund_event_target(event: str | None) -> RefundStatus | None:
    return _REFUND_EVENT_TARGET.get(event or "")


def refund_outcome(
    entity: dict, refund_id: int, status: RefundStatus | None = None
) -> RefundOutcome | None:
    """A Razorpay refund entity as our RefundOutcome for our row `refund_id`; None if it
    can't be one (`status` overrides the entity's, as a webhook's event name does)."""
    status = status or refund_status(entity.get("status"))
    razorpay_id, amount = entity.get("id"), whole_number(entity.get("amount"))
    if status is None or not isinstance(razorpay_id, str) or not razorpay_id.startswith("rfnd_"):
        return None
    if amount is None:
        return None
    error = entity.get("error_description") if status is RefundStatus.FAILED else None
    return RefundOutcome(refund_id, razorpay_id, status, amount, error)


def outcome_from_payment(entity: dict) -> PaymentOutcome | None:
    """A Razorpay payment entity as our PaymentOutcome; None if it can't be one of ours."""
    status = payment_status(entity.get("status"))
    order_id, payment_id = entity.get("order_id"), entity.get("id")
    currency, amount = entity.get("currency"), whole_number(entity.get("amount"))
    if status is None or not isinstance(order_id, str) or not isinstance(payment_id, str):
        return None
    if not isinstance(currency, str) or amount is None:
        return None
    failed = status is PaymentStatus.FAILED
    return PaymentOutcome(
        order_id=order_id,
        payment_id=payment_id,
        status=status,
        amount_paise=amount,
        error_code=entity.get("error_code") if failed else None,
        error_description=entity.get("error_description") if failed else None,
        currency=currency,
    )


def best_outcome(entities: list[dict]) -> PaymentOutcome | None:
    """Of all payments on one order, the one that got furthest (captured beats failed)."""
    outcomes = [o for o in map(outcome_from_payment, entities) if o is not None]
    return max(outcomes, key=lambda o: rank(o.status), default=None)
