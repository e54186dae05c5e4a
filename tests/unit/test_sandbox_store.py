"""The sandbox's pure store: status moves and the events each payment outcome causes."""

from __future__ import annotations

import itertools

import pytest

from razorpay_sandbox.entities import (
    PAYMENT_TRANSITIONS,
    IllegalTransition,
    Payment,
    PaymentStatus,
)
from razorpay_sandbox.errors import ApiError
from razorpay_sandbox.store import NewOrder, Outcome, Store

ALLOWED = {
    (PaymentStatus.CREATED, PaymentStatus.AUTHORIZED),
    (PaymentStatus.CREATED, PaymentStatus.FAILED),
    (PaymentStatus.FAILED, PaymentStatus.AUTHORIZED),
    (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED),
    (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED),
}


@pytest.mark.parametrize(("start", "target"), list(itertools.product(PaymentStatus, PaymentStatus)))
def test_every_payment_transition_pair(start, target):
    payment = Payment("pay_x", "order_x", 100, "INR", 0, status=start)
    if (start, target) in ALLOWED:
        payment.move_to(target)
        assert payment.status is target
    else:
        with pytest.raises(IllegalTransition):
            payment.move_to(target)
    assert {(s, t) for s, ts in PAYMENT_TRANSITIONS.items() for t in ts} == ALLOWED


@pytest.mark.parametrize(
    ("outcome", "auto_capture", "events", "final"),
    [
        (
            Outcome.CAPTURED,
            True,
            ["payment.authorized", "payment.captured", "order.paid"],
            "captured",
        ),
        (Outcome.CAPTURED, False, ["payment.authorized"], "authorized"),
        (Outcome.AUTHORIZED, True, ["payment.authorized"], "authorized"),
        (Outcome.FAILED, True, ["payment.failed"], "failed"),
        (
            Outcome.LATE_AUTHORIZED,
            True,
            ["payment.failed", "payment.authorized", "payment.captured", "order.paid"],
            "captured",
        ),
    ],
)
def test_pay_outcomes(outcome, auto_capture, events, final):
    store = Store(clock=lambda: 1_700_000_000)
    order, created = store.create_order(NewOrder(amount=500, payment_capture=auto_capture))

    payment, emitted = store.pay(order.id, outcome)

    assert created and [e.name for e in emitted] == events
    assert payment.status == final
    assert all(e.payment["id"] == payment.id for e in emitted)
    assert emitted[0].payment["status"] == events[0].removeprefix("payment.")  # a snapshot
    assert order.attempts == 1
    assert order.status == ("paid" if final == "captured" else "attempted")


def test_receipts_are_unique_unless_asked_for_the_existing_order():
    store = Store()
    first, _ = store.create_order(NewOrder(amount=500, receipt="r1"))

    with pytest.raises(ApiError, match="unique"):
        store.create_order(NewOrder(amount=500, receipt="r1"))
    again, created = store.create_order(NewOrder(amount=900, receipt="r1", unique_receipt=True))

    assert again is first and not created and store.orders_created == 1
