"""Fault injection on the /v1 API: slow answers, a refusal, 5xx, or a connection closed
unanswered.

A test sets one rule with `POST /sandbox/faults`; it applies to /v1 requests under its
path prefix, optionally only to the next `count` of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

from razorpay_sandbox.errors import ApiError, gateway_error, server_error
from razorpay_sandbox.validation import is_int

API_PREFIX = "/v1"
MAX_DELAY_SECONDS = 120.0
REFUSED = "Your request could not be processed at this time. Please try again later."


class FaultMode(StrEnum):
    NONE = "none"
    SLOW = "slow"
    ERROR_400 = "error_400"
    ERROR_500 = "error_500"
    ERROR_502 = "error_502"
    RESET = "reset"


@dataclass
class FaultRule:
    mode: FaultMode = FaultMode.NONE
    delay_seconds: float = 0.0
    path_prefix: str = API_PREFIX
    remaining: int | None = None  # None: until changed

    def summary(self) -> dict[str, Any]:
        return {
            "mode": str(self.mode),
            "delay_seconds": self.delay_seconds,
            "path_prefix": self.path_prefix,
            "count": self.remaining,
        }

    @classmethod
    def parse(cls, body: dict[str, Any]) -> FaultRule:
        try:
            mode = FaultMode(body.get("mode", "none"))
        except ValueError:
            raise ApiError("mode must be one of " + ", ".join(FaultMode), field="mode") from None
        delay = body.get("delay_seconds", 0.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise ApiError("delay_seconds must be a number", field="delay_seconds")
        if not 0 <= delay <= MAX_DELAY_SECONDS:
            raise ApiError(f"delay_seconds must be 0..{MAX_DELAY_SECONDS}", field="delay_seconds")
        prefix = body.get("path_prefix") or API_PREFIX
        if not isinstance(prefix, str) or not prefix.startswith(API_PREFIX):
            raise ApiError("path_prefix must start with /v1", field="path_prefix")
        count = body.get("count")
        if count is not None and (not is_int(count) or count < 1):
            raise ApiError("count must be a positive integer", field="count")
        return cls(mode, float(delay), prefix, count)


class FaultInjector:
    def __init__(self) -> None:
        self.rule = FaultRule()

    def set(self, rule: FaultRule) -> None:
        self.rule = rule

    def clear(self) -> None:
        self.rule = FaultRule()

    def take(self, path: str) -> FaultRule | None:
        """The rule if it applies to this request, counting it against `count`."""
        rule = self.rule
        if rule.mode is FaultMode.NONE or not path.startswith(rule.path_prefix):
            return None
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                self.clear()
        return rule


async def apply(rule: FaultRule, request: web.Request, handler) -> web.StreamResponse:
    if rule.mode is FaultMode.SLOW:
        # Received, then slow: the request still takes effect if the client stops waiting
        # (an answer lost to a timeout), so read the body before the wait.
        await request.read()
        await asyncio.sleep(rule.delay_seconds)
        return await handler(request)
    if rule.mode is FaultMode.ERROR_400:
        # A BAD_REQUEST_ERROR for a request Razorpay would otherwise take: what a client
        # sees, e.g., when it repeats a refund whose first request is still in progress.
        raise ApiError(REFUSED, step="NA")
    if rule.mode is FaultMode.ERROR_500:
        raise server_error()
    if rule.mode is FaultMode.ERROR_502:
        raise gateway_error()
    # RESET: close the socket without answering; the client sees the connection drop.
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)
