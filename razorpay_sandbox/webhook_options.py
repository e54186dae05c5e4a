"""How a simulated payment's webhooks should misbehave, as asked by a test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from razorpay_sandbox.errors import ApiError
from razorpay_sandbox.validation import is_int

MAX_DUPLICATES = 5


@dataclass(frozen=True)
class WebhookOptions:
    enabled: bool = True
    duplicate: int = 0  # extra copies of each delivery, same event id
    reorder: bool = False  # deliver the set in reverse order
    drop_all: bool = False
    drop: frozenset[str] = frozenset()  # event names not to deliver

    def delivers(self, event: str) -> bool:
        return self.enabled and not self.drop_all and event not in self.drop

    @classmethod
    def parse(cls, raw: Any) -> WebhookOptions:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ApiError("webhooks must be an object", field="webhooks")
        enabled = raw.get("enabled", True)
        reorder = raw.get("reorder", False)
        duplicate = raw.get("duplicate", 0)
        drop = raw.get("drop", False)
        if not isinstance(enabled, bool) or not isinstance(reorder, bool):
            raise ApiError("webhooks.enabled and webhooks.reorder must be booleans")
        if not is_int(duplicate) or not 0 <= duplicate <= MAX_DUPLICATES:
            raise ApiError(
                f"webhooks.duplicate must be an integer from 0 to {MAX_DUPLICATES}",
                field="webhooks.duplicate",
            )
        if isinstance(drop, bool):
            return cls(enabled, duplicate, reorder, drop_all=drop)
        if not isinstance(drop, list) or not all(isinstance(name, str) for name in drop):
            raise ApiError(
                "webhooks.drop must be false, true or a list of event names",
                field="webhooks.drop",
            )
        return cls(enabled, duplicate, reorder, drop=frozenset(drop))
