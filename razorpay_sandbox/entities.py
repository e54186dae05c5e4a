"""Orders and payments as Razorpay shows them, with the status moves Razorpay allows."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str = "") -> str:
    """Razorpay-style id: prefix + 14 random alphanumerics (`order_…`, `pay_…`)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(14))


class OrderStatus(StrEnum):
    CREATED = "created"
    ATTEMPTED = "attempted"
    PAID = "paid"


class PaymentStatus(StrEnum):
    CREATED = "created"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    FAILED = "failed"
    REFUNDED = "refunded"  # captured, then refunded in full


# failed -> authorized is Razorpay's "late authorization": the bank confirms after the
# customer was told the payment failed.
PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.CREATED: frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.FAILED}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.AUTHORIZED}),
    PaymentStatus.AUTHORIZED: frozenset({PaymentStatus.CAPTURED}),
    PaymentStatus.CAPTURED: frozenset({PaymentStatus.REFUNDED}),
    PaymentStatus.REFUNDED: frozenset(),
}

ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.CREATED: frozenset({OrderStatus.ATTEMPTED}),
    OrderStatus.ATTEMPTED: frozenset({OrderStatus.PAID}),
    OrderStatus.PAID: frozenset(),
}

# What Razorpay puts on a payment the bank declined.
FAILURE = {
    "error_code": "BAD_REQUEST_ERROR",
    "error_description": "Payment processing failed because of incorrect OTP",
    "error_source": "customer",
    "error_step": "payment_authentication",
    "error_reason": "incorrect_otp",
}
NO_FAILURE = dict.fromkeys(FAILURE)


class IllegalTransition(Exception):
    pass


@dataclass
class Order:
    id: str
    amount: int
    currency: str
    receipt: str | None
    notes: dict[str, Any]
    payment_capture: bool
    created_at: int
    status: OrderStatus = OrderStatus.CREATED
    amount_paid: int = 0
    attempts: int = 0
    payment_ids: list[str] = field(default_factory=list)

    def move_to(self, target: OrderStatus) -> None:
        if target not in ORDER_TRANSITIONS[self.status]:
            raise IllegalTransition(f"order {self.status} -> {target}")
        self.status = target

    def record_attempt(self, payment_id: str) -> None:
        self.payment_ids.append(payment_id)
        self.attempts += 1
        if self.status is OrderStatus.CREATED:
            self.move_to(OrderStatus.ATTEMPTED)

    def mark_paid(self) -> None:
        self.move_to(OrderStatus.PAID)
        self.amount_paid = self.amount

    def entity(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": "order",
            "amount": self.amount,
            "amount_paid": self.amount_paid,
            "amount_due": self.amount - self.amount_paid,
            "currency": self.currency,
            "receipt": self.receipt,
            "offer_id": None,
            "status": str(self.status),
            "attempts": self.attempts,
            "notes": dict(self.notes),
            "created_at": self.created_at,
        }


@dataclass
class Payment:
    id: str
    order_id: str
    amount: int
    currency: str
    created_at: int
    status: PaymentStatus = PaymentStatus.CREATED
    late_authorized: bool = False
    amount_refunded: int = 0  # refunds not failed
    error: dict[str, str | None] = field(default_factory=lambda: dict(NO_FAILURE))

    def move_to(self, target: PaymentStatus) -> None:
        if target not in PAYMENT_TRANSITIONS[self.status]:
            raise IllegalTransition(f"payment {self.status} -> {target}")
        if target is PaymentStatus.REFUNDED:
            self.status = target  # keeps the capture's fee and no error
            return
        if target is PaymentStatus.AUTHORIZED and self.status is PaymentStatus.FAILED:
            self.late_authorized = True
        self.status = target
        self.error = dict(FAILURE if target is PaymentStatus.FAILED else NO_FAILURE)

    @property
    def refund_status(self) -> str | None:
        if not self.amount_refunded:
            return None
        return "full" if self.amount_refunded >= self.amount else "partial"

    def entity(self) -> dict[str, Any]:
        captured = self.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED)
        # Razorpay fills fee and tax (GST on the fee) when the payment is captured: 2% and
        # 18% GST on it, as the sandbox's settlements charge by default.
        base = (self.amount * 200 + 5_000) // 10_000
        tax = (base * 18 + 50) // 100 if captured else None
        fee = base + tax if captured else None
        body: dict[str, Any] = {
            "id": self.id,
            "entity": "payment",
            "amount": self.amount,
            "currency": self.currency,
            "status": str(self.status),
            "order_id": self.order_id,
            "invoice_id": None,
            "international": False,
            "method": "card",
            "amount_refunded": self.amount_refunded,
            "refund_status": self.refund_status,
            "captured": captured,
            "description": None,
            "card_id": None,
            "bank": None,
            "wallet": None,
            "vpa": None,
            "email": "customer@example.com",
            "contact": "+919000090000",
            "notes": {},
            "fee": fee,
            "tax": tax,
            **self.error,
            "acquirer_data": {},
            "created_at": self.created_at,
        }
        if self.late_authorized:
            body["late_authorized"] = True
        return body


class RefundStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PENDING: frozenset({RefundStatus.PROCESSED, RefundStatus.FAILED}),
    RefundStatus.PROCESSED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}


@dataclass
class Refund:
    id: str
    payment_id: str
    amount: int
    currency: str
    notes: dict[str, Any]
    receipt: str | None
    created_at: int
    speed_requested: str = "normal"
    status: RefundStatus = RefundStatus.PENDING

    def move_to(self, target: RefundStatus) -> None:
        if target not in REFUND_TRANSITIONS[self.status]:
            raise IllegalTransition(f"refund {self.status} -> {target}")
        self.status = target

    def entity(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": "refund",
            "amount": self.amount,
            "currency": self.currency,
            "payment_id": self.payment_id,
            "notes": dict(self.notes),
            "receipt": self.receipt,
            "acquirer_data": {"arn": None},
            "created_at": self.created_at,
            "batch_id": None,
            "status": str(self.status),
            "speed_processed": "normal",
            "speed_requested": self.speed_requested,
        }
