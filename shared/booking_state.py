"""The booking state machine. Pure: no I/O. `order_service.pass_scans` applies it in SQL, and
migration 010's trigger refuses any other move whoever writes the row.

    pending ──▶ confirmed ──▶ collected ──▶ returned
       │            │
       └────────────┴──▶ cancelled

A booking is confirmed by its captured payment, collected when the collection pass is
scanned at the counter and returned when the return pass is. Once the car is out, the
booking can no longer be cancelled (a refund is still possible: it is about money, not
the car). `returned` and `cancelled` are terminal.
"""

from __future__ import annotations

from enum import StrEnum


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    COLLECTED = "collected"
    RETURNED = "returned"
    CANCELLED = "cancelled"


_NEXT: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.PENDING: frozenset({BookingStatus.CONFIRMED, BookingStatus.CANCELLED}),
    BookingStatus.CONFIRMED: frozenset({BookingStatus.COLLECTED, BookingStatus.CANCELLED}),
    BookingStatus.COLLECTED: frozenset({BookingStatus.RETURNED}),
    BookingStatus.RETURNED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
}


def can_transition(current: BookingStatus, target: BookingStatus) -> bool:
    return target in _NEXT[current]


def allowed_sources(target: BookingStatus) -> list[BookingStatus]:
    """Statuses from which `target` may be entered: what the conditional UPDATE matches."""
    return [s for s in BookingStatus if can_transition(s, target)]

