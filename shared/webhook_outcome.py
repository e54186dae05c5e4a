"""What became of one webhook delivery: the closed set webhook_events.outcome holds."""

from __future__ import annotations

from enum import StrEnum


class WebhookOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # its event key was recorded before: nothing changes
    STALE = "stale"  # the payment or refund is already where (or beyond where) it says
    UNKNOWN_ORDER = "unknown_order"
    UNKNOWN_REFUND = "unknown_refund"  # a refund of a payment that is not ours
    OUTSIDE_REFUND_OVER_CAP = "outside_refund_over_cap"  # ours in flight + it > captured
    AMOUNT_MISMATCH = "amount_mismatch"
    CONFLICT = "conflict"  # another payment already holds the booking's capture
    IGNORED_EVENT = "ignored_event"  # an event we do not act on, acknowledged
    UNUSABLE_PAYLOAD = "unusable_payload"
