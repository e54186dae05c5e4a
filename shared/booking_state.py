"""A booking's status: the closed set bookings.status holds (its CHECK says the same)."""

from __future__ import annotations

from enum import StrEnum


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
