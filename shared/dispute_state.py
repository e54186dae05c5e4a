"""The one dispute (chargeback) state machine. Pure: no I/O. `shared.disputes` applies it in
SQL, and migration 012's trigger refuses any other move.

    open ──▶ under_review ──▶ won | lost | closed
      │  ▲        │
      ▼  │        ▼
    action_required (Razorpay asks for (more) evidence; answered, it is under review again)

`open`, `action_required` and `under_review` are open: the disputed amount is held, refunds
of the payment are refused, and `respond_by` is a deadline while evidence is wanted.
"""

from __future__ import annotations

from enum import StrEnum


class DisputeStatus(StrEnum):
    OPEN = "open"
    ACTION_REQUIRED = "action_required"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    CLOSED = "closed"


_FINAL = frozenset({DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.CLOSED})
_NEXT: dict[DisputeStatus, frozenset[DisputeStatus]] = {
    DisputeStatus.OPEN: frozenset({DisputeStatus.ACTION_REQUIRED, DisputeStatus.UNDER_REVIEW})
    | _FINAL,
    DisputeStatus.ACTION_REQUIRED: frozenset({DisputeStatus.UNDER_REVIEW}) | _FINAL,
    DisputeStatus.UNDER_REVIEW: frozenset({DisputeStatus.ACTION_REQUIRED}) | _FINAL,
    DisputeStatus.WON: frozenset(),
    DisputeStatus.LOST: frozenset(),
    DisputeStatus.CLOSED: frozenset(),
}

# Razorpay's webhook events, and where each moves a dispute.
EVENT_TARGET = {
    "payment.dispute.created": DisputeStatus.OPEN,
    "payment.dispute.action_required": DisputeStatus.ACTION_REQUIRED,
    "payment.dispute.under_review": DisputeStatus.UNDER_REVIEW,
    "payment.dispute.won": DisputeStatus.WON,
    "payment.dispute.lost": DisputeStatus.LOST,
    "payment.dispute.closed": DisputeStatus.CLOSED,
}


def can_transition(current: DisputeStatus, target: DisputeStatus) -> bool:
    return target in _NEXT[current]


def allowed_sources(target: DisputeStatus) -> list[DisputeStatus]:
    """Statuses from which `target` may be entered: what the conditional UPDATE matches."""
    return [s for s in DisputeStatus if can_transition(s, target)]


def is_terminal(status: DisputeStatus) -> bool:
    return not _NEXT[status]


def is_open(status: DisputeStatus) -> bool:
    return not is_terminal(status)


def can_respond(status: DisputeStatus) -> bool:
    """Evidence can be submitted, or the dispute accepted, only while Razorpay waits for us."""
    return status in (DisputeStatus.OPEN, DisputeStatus.ACTION_REQUIRED)


OPEN_STATUSES = [s.value for s in DisputeStatus if is_open(s)]
