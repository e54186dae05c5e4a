"""The sandbox's memory: orders and payments, and every state change as an event.

Pure logic, no I/O. Each operation returns the events it caused (what Razorpay would
send as webhooks), each carrying a snapshot of the entities at that moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from razorpay_sandbox.entities import (
    Order,
    OrderStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    new_id,
)
from razorpay_sandbox.errors import ApiError, not_found


class Outcome(StrEnum):
    CAPTURED = "captured"
    AUTHORIZED = "authorized"
    FAILED = "failed"
    LATE_AUTHORIZED = "late_authorized"


@dataclass(frozen=True)
class NewOrder:
    amount: int
    currency: str = "INR"
    receipt: str | None = None
    notes: dict[str, Any] | None = None
    payment_capture: bool = True
    unique_receipt: bool = False


@dataclass(frozen=True)
class NewRefund:
    amount: int | None  # None: all that is not refunded yet
    notes: dict[str, Any] | None = None
    receipt: str | None = None
    speed: str = "normal"


MIN_REFUND = 100  # ₹1
OVER_REFUND = "The refund amount provided is greater than amount captured"
FULLY_REFUNDED = "The payment has been fully refunded already"
NOT_CAPTURED = "The payment has not been captured yet, so it cannot be refunded"
BELOW_MINIMUM = "The amount must be atleast INR 1.00"


@dataclass(frozen=True)
class Event:
    name: str
    payment: dict[str, Any]
    order: dict[str, Any] | None
    created_at: int
    refund: dict[str, Any] | None = None
    dispute: dict[str, Any] | None = None


class Store:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self.orders: dict[str, Order] = {}
        self.payments: dict[str, Payment] = {}
        self.order_by_receipt: dict[str, str] = {}
        self.refunds: dict[str, Refund] = {}
        self.refund_by_idempotency_key: dict[str, str] = {}  # X-Refund-Idempotency
        self.refund_outcome = RefundStatus.PROCESSED  # where pending refunds end up
        self.orders_created = 0
        self.api_requests = 0

    def now(self) -> int:
        return int(self._clock())

    # Orders

    def create_order(self, request: NewOrder) -> tuple[Order, bool]:
        """The order, and whether it is new (False: an earlier order with this receipt)."""
        existing_id = self.order_by_receipt.get(request.receipt or "")
        if existing_id is not None:
            if request.unique_receipt:
                return self.orders[existing_id], False
            raise ApiError("Order receipt should be unique.", field="receipt")
        order = Order(
            id=new_id("order_"),
            amount=request.amount,
            currency=request.currency,
            receipt=request.receipt,
            notes=dict(request.notes or {}),
            payment_capture=request.payment_capture,
            created_at=self.now(),
        )
        self.orders[order.id] = order
        if order.receipt:
            self.order_by_receipt[order.receipt] = order.id
        self.orders_created += 1
        return order, True

    def order(self, order_id: str, *, missing_status: int = 400) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found(status=missing_status)
        return order

    def list_orders(self, *, count: int, skip: int, receipt: str | None) -> list[Order]:
        newest_first = reversed(self.orders.values())
        matching = [o for o in newest_first if receipt is None or o.receipt == receipt]
        return matching[skip : skip + count]

    def order_payments(self, order_id: str) -> list[Payment]:
        order = self.order(order_id)
        return [self.payments[pid] for pid in reversed(order.payment_ids)]

    # Payments

    def payment(self, payment_id: str) -> Payment:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise not_found()
        return payment

    def capture(self, payment_id: str, amount: int, currency: str | None) -> list[Event]:
        payment = self.payment(payment_id)
        if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
            raise ApiError("This payment has already been captured", step="payment_capture")
        if payment.status is not PaymentStatus.AUTHORIZED:
            raise ApiError(
                "Only payments which have been authorized and not yet captured can be captured",
                step="payment_capture",
            )
        if currency is not None and currency != payment.currency:
            raise ApiError(
                "Capture currency must be the same as the payment currency",
                field="currency",
                step="payment_capture",
            )
        if amount != payment.amount:
            raise ApiError(
                "Capture amount must be equal to the amount authorized",
                field="amount",
                step="payment_capture",
            )
        return self._capture(payment)

    def pay(self, order_id: str, outcome: Outcome) -> tuple[Payment, list[Event]]:
        """What Checkout does: one payment attempt on the order, ending in `outcome`."""
        order = self.order(order_id, missing_status=404)
        if order.status is OrderStatus.PAID:
            raise ApiError("Order is already paid", field="order_id")
        payment = Payment(
            id=new_id("pay_"),
            order_id=order.id,
            amount=order.amount - order.amount_paid,
            currency=order.currency,
            created_at=self.now(),
        )
        self.payments[payment.id] = payment
        order.record_attempt(payment.id)
        events: list[Event] = []
        if outcome in (Outcome.FAILED, Outcome.LATE_AUTHORIZED):
            events.append(self.move_payment(payment, PaymentStatus.FAILED, "payment.failed"))
            if outcome is Outcome.FAILED:
                return payment, events
        events.append(self.move_payment(payment, PaymentStatus.AUTHORIZED, "payment.authorized"))
        # An order created with payment_capture=0 keeps its payments authorized until
        # our services capture them through the API.
        if outcome is not Outcome.AUTHORIZED and order.payment_capture:
            events.extend(self._capture(payment))
        return payment, events

    # Refunds

    def refund(
        self, payment_id: str, request: NewRefund, idempotency_key: str | None = None
    ) -> tuple[Refund, list[Event]]:
        """A refund on a captured payment; it starts `pending` (see `settle_refund`). A key
        seen before gives the refund it made, and nothing new."""
        known = self.refund_by_idempotency_key.get(idempotency_key or "")
        if known is not None:
            return self.refunds[known], []
        payment = self.payment(payment_id)
        if payment.status is PaymentStatus.REFUNDED:
            raise ApiError(FULLY_REFUNDED, field="amount", step="refund")
        if payment.status is not PaymentStatus.CAPTURED:
            raise ApiError(NOT_CAPTURED, field="payment_id", step="refund")
        remaining = payment.amount - payment.amount_refunded
        amount = remaining if request.amount is None else request.amount
        if amount < MIN_REFUND:
            raise ApiError(BELOW_MINIMUM, field="amount", step="refund")
        if amount > remaining:
            raise ApiError(OVER_REFUND, field="amount", step="refund")
        refund = Refund(
            id=new_id("rfnd_"),
            payment_id=payment.id,
            amount=amount,
            currency=payment.currency,
            notes=dict(request.notes or {}),
            receipt=request.receipt,
            created_at=self.now(),
            speed_requested=request.speed,
        )
        self.refunds[refund.id] = refund
        if idempotency_key:
            self.refund_by_idempotency_key[idempotency_key] = refund.id
        payment.amount_refunded += amount
        if payment.amount_refunded >= payment.amount:
            payment.move_to(PaymentStatus.REFUNDED)
        return refund, [self._refund_event("refund.created", refund)]

    def settle_refund(self, refund_id: str) -> list[Event]:
        """Moves a pending refund to `refund_outcome` (processed unless a test said failed)."""
        refund = self.refunds.get(refund_id)
        if refund is None or refund.status is not RefundStatus.PENDING:
            return []
        refund.move_to(self.refund_outcome)
        if refund.status is RefundStatus.FAILED:
            payment = self.payments[refund.payment_id]
            payment.amount_refunded -= refund.amount
            if payment.status is PaymentStatus.REFUNDED:
                payment.status = PaymentStatus.CAPTURED  # the money went back to the merchant
        return [self._refund_event(f"refund.{refund.status}", refund)]

    def refund_by_id(self, refund_id: str) -> Refund:
        refund = self.refunds.get(refund_id)
        if refund is None:
            raise not_found()
        return refund

    def payment_refunds(self, payment_id: str) -> list[Refund]:
        self.payment(payment_id)
        return [r for r in reversed(self.refunds.values()) if r.payment_id == payment_id]

    def list_refunds(self, *, count: int, skip: int) -> list[Refund]:
        return list(reversed(self.refunds.values()))[skip : skip + count]

    def _refund_event(self, name: str, refund: Refund) -> Event:
        payment = self.payments[refund.payment_id]
        return Event(name=name, payment=payment.entity(), order=None, created_at=self.now(),
                     refund=refund.entity())

    def stats(self) -> dict[str, int]:
        return {
            "orders_created": self.orders_created,
            "payments": len(self.payments),
            "refunds": len(self.refunds),
            "api_requests": self.api_requests,
        }

    def _capture(self, payment: Payment) -> list[Event]:
        order = self.orders[payment.order_id]
        events = [self.move_payment(payment, PaymentStatus.CAPTURED, "payment.captured")]
        if order.status is not OrderStatus.PAID:
            order.mark_paid()
            events.append(self._event("order.paid", payment, order))
        return events

    def move_payment(self, payment: Payment, target: PaymentStatus, event: str) -> Event:
        payment.move_to(target)
        return self._event(event, payment)

    def _event(self, name: str, payment: Payment, order: Order | None = None) -> Event:
        return Event(
            name=name,
            payment=payment.entity(),
            order=order.entity() if order else None,
            created_at=self.now(),
        )
