"""The one refund state machine. Pure: no I/O. `shared.refunds` applies it in SQL.

A refund row is written before Razorpay is asked, so it starts `requested`:

    requested ──▶ pending ──▶ processed
        │            └──────▶ failed
        └──▶ processed | failed   (Razorpay may answer either at once)

Forward only; `processed` and `failed` are terminal. A failed refund gives its amount back
to what may still be refunded, and is surfaced to operators (never swallowed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefundStatus(StrEnum):
    REQUESTED = "requested"
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


_NEXT: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.REQUESTED: frozenset(
        {RefundStatus.PENDING, RefundStatus.PROCESSED, RefundStatus.FAILED}
    ),
    RefundStatus.PENDING: frozenset({RefundStatus.PROCESSED, RefundStatus.FAILED}),
    RefundStatus.PROCESSED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}


def can_transition(current: RefundStatus, target: RefundStatus) -> bool:
    return target in _NEXT[current]


def allowed_sources(target: RefundStatus) -> list[RefundStatus]:
    """Statuses from which `target` may be entered: what the conditional UPDATE matches."""
    return [s for s in RefundStatus if can_transition(s, target)]


def is_terminal(status: RefundStatus) -> bool:
    return not _NEXT[status]


@dataclass(frozen=True)
class RefundOutcome:
    """What Razorpay (an answer, a webhook, a poll) says about one of our refunds."""

    refund_id: int  # ours: the refunds row
    razorpay_refund_id: str
    status: RefundStatus
    amount_paise: int
    error: str | None = None
