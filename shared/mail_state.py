"""A mail's state in the mail outbox: the closed set notifications.state holds."""

from __future__ import annotations

from enum import StrEnum


class MailState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
