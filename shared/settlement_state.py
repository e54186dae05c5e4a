"""The one settlement state machine. Pure: no I/O. `shared.settlements` applies it in SQL.

A settlement is recorded `pending` (from `settlement.processed` or the daily poll); once its
day's recon items are recorded it is `matched` (credits minus debits equal its amount) or
`flagged` (with the difference). A flagged one is judged again once a day for a week (its
difference follows its items) and becomes matched when a later pass finds the items that
were missing; a matched one never changes again:

    pending ──▶ matched
        └────▶ flagged ──▶ matched
"""

from __future__ import annotations

from enum import StrEnum


class SettlementStatus(StrEnum):
    PENDING = "pending"
    MATCHED = "matched"
    FLAGGED = "flagged"


_NEXT: dict[SettlementStatus, frozenset[SettlementStatus]] = {
    SettlementStatus.PENDING: frozenset({SettlementStatus.MATCHED, SettlementStatus.FLAGGED}),
    SettlementStatus.FLAGGED: frozenset({SettlementStatus.MATCHED}),
    SettlementStatus.MATCHED: frozenset(),
}


def can_transition(current: SettlementStatus, target: SettlementStatus) -> bool:
    return target in _NEXT[current]


def allowed_sources(target: SettlementStatus) -> list[SettlementStatus]:
    """Statuses from which `target` may be entered: what the conditional UPDATE matches."""
    return [s for s in SettlementStatus if can_transition(s, target)]


def verdict(difference_paise: int) -> SettlementStatus:
    """Matched when the items add up to the amount paid out, to the paisa."""
    return SettlementStatus.MATCHED if difference_paise == 0 else SettlementStatus.FLAGGED


class ItemType(StrEnum):
    """Razorpay's recon item types; an unknown one never reaches the database."""

    PAYMENT = "payment"
    REFUND = "refund"
    TRANSFER = "transfer"
    ADJUSTMENT = "adjustment"
