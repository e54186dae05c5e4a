"""The webhook's body, as documented: the view reads raw bytes (the signature covers them)
and only then parses; Razorpay's payloads carry much more than these two keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WebhookEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    event: str
    payload: dict = {}
