from shared.payment_state import PaymentStatus
from shared.razorpay_map import best_outcome, event_target, outcome_from_payment, payment_status


def entity(status, pid="pay_A", amount=150000, **extra):
    return {"id": pid, "order_id": "order_X", "status": status, "amount": amount,
            "currency": "INR", **extra}


def test_unknown_vocabulary_maps_to_none():
    assert payment_status("weird") is None
    assert event_target("refund.created") is None
    assert outcome_from_payment(entity("weird")) is None
    assert outcome_from_payment(entity("captured", amount="150000")) is None
    assert outcome_from_payment(entity("captured", amount=True)) is None


def test_events_map_to_targets():
    assert event_target("payment.captured") is PaymentStatus.CAPTURED
    assert event_target("order.paid") is PaymentStatus.CAPTURED
    assert event_target("payment.failed") is PaymentStatus.FAILED
    assert event_target("payment.authorized") is PaymentStatus.AUTHORIZED


def test_best_outcome_prefers_the_payment_that_got_furthest():
    failed = entity("failed", "pay_F", error_code="BAD_REQUEST_ERROR")
    captured = entity("captured", "pay_C")
    best = best_outcome([failed, captured, entity("created", "pay_N")])
    assert best.payment_id == "pay_C" and best.status is PaymentStatus.CAPTURED
    only_failed = best_outcome([failed])
    assert only_failed.status is PaymentStatus.FAILED
    assert only_failed.error_code == "BAD_REQUEST_ERROR"
    assert best_outcome([]) is None


def test_refunded_and_currencyless_payments_are_never_acted_on():
    # Razorpay auto-refunds authorized-but-uncaptured payments: not money we hold.
    assert outcome_from_payment(entity("refunded", captured=False)) is None
    assert outcome_from_payment(entity("refunded", captured=True)) is None
    assert best_outcome([entity("refunded"), entity("failed", "pay_F")]).status is (
        PaymentStatus.FAILED)
    assert outcome_from_payment({**entity("captured"), "currency": None}) is None
    assert outcome_from_payment(entity("captured", currency="USD")).currency == "USD"
