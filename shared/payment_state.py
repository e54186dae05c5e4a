"""The one payment state machine. Pure: no I/O. shared/payments.py applies it in SQL.

A payment row is one Razorpay order. Its status only moves forward:

    created ──▶ failed ──▶ authorized ──▶ captured
       └───────────┴──────────┴──────────────▲

`failed` can still become `authorized` or `captured` (Razorpay's late authorisation);
`captured` is terminal. A `failed` report about an `authorized` order is stale and ignored.
The order above is a total order, so "allowed" is simply "strictly later".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PaymentStatus(StrEnum):
    CREATED = "created"
    FAILED = "failed"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"


_RANK = {status: n for n, status in enumerate(PaymentStatus)}  # the order declared above


def rank(status: PaymentStatus) -> int:
    return _RANK[status]


def can_transition(current: PaymentStatus, target: PaymentStatus) -> bool:
    return _RANK[target] > _RANK[current]


def allowed_sources(target: PaymentStatus) -> list[PaymentStatus]:
    """Statuses from which `target` may be entered: what the conditional UPDATE matches."""
    return [s for s in PaymentStatus if can_transition(s, target)]


def public_status(status: PaymentStatus, fully_refunded: bool = False) -> str:
    """The seed's vocabulary for payment-status: pending / paid / failed, and `refunded`
    for a captured payment refunded in full (a partial refund leaves it paid)."""
    if status is PaymentStatus.CAPTURED:
        return "refunded" if fully_refunded else "paid"
    return "failed" if status is PaymentStatus.FAILED else "pending"  # created, authorized


@dataclass(frozen=True)
class PaymentOutcome:
    """What a source (verify, webhook, reconciliation) learned about one Razorpay payment."""

    order_id: str
    payment_id: str
    status: PaymentStatus
    amount_paise: int
    error_code: str | None = None
    error_description: str | None = None
    currency: str = "INR"
