"""What became of one webhook delivery: the closed set webhook_events.outcome holds."""

from __future__ import annotations

from enum import StrEnum


class WebhookOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # its event key was recorded before: nothing changes
    STALE = "stale"  # the payment or refund is already where (or beyond where) it says
    UNKNOWN_ORDER = "unknown_order"
    UNKNOWN_REFUND = "unknown_refund"  # e.g. made in Razorpay's dashboard
    AMOUNT_MISMATCH = "amount_mismatch"
    CONFLICT = "conflict"  # another payment already holds the booking's capture
    IGNORED_EVENT = "ignored_event"  # an event we do not act on, acknowledged
    UNUSABLE_PAYLOAD = "unusable_payload"
