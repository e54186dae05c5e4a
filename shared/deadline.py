"""How long the caller will wait, passed along so a service stops working on a request the
caller has given up on (a brownout then leaves no backlog behind it).

The gateway sends the time it will wait, in milliseconds, as a budget (not a wall-clock
instant, so the machines' clocks need not agree). A service runs the request under that
budget and abandons it when it runs out: its transaction rolls back, its waits for a
connection or a Razorpay thread are cancelled. Work already done stays consistent, as
after a crash at the same point (Razorpay's unique receipt, webhooks and reconciliation
bring back whatever a cut-off request had set in motion).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

log = logging.getLogger(__name__)

DEADLINE_HEADER = "X-A6-Deadline-Ms"
_MAX_BUDGET_MS = 300_000
# The service gives up a little before the caller, so its own answer (504) is the one sent.
_MARGIN_MS = 100
DEADLINE_PASSED = "Request deadline passed. Please retry."


def deadline_header(timeout_seconds: float) -> str:
    return str(max(1, int(timeout_seconds * 1000)))


def budget_seconds(header: str | None) -> float | None:
    """The budget the caller gave, or None when it gave none (or nonsense: then no limit
    beyond the service's own timeouts)."""
    if header is None or not header.isascii() or not header.isdigit() or len(header) > 7:
        return None
    budget_ms = min(int(header), _MAX_BUDGET_MS)
    return max(budget_ms - _MARGIN_MS, budget_ms // 2, 1) / 1000


@web.middleware
async def deadline_middleware(request: web.Request, handler) -> web.StreamResponse:
    budget = budget_seconds(request.headers.get(DEADLINE_HEADER))
    if budget is None:
        return await handler(request)
    deadline = asyncio.timeout(budget)
    try:
        async with deadline:
            return await handler(request)
    except TimeoutError:
        if not deadline.expired():
            raise  # the handler's own timeout, not ours
        route = request.match_info.route.resource
        log.warning("request abandoned: the caller's deadline passed", extra={"ctx": {
            "route": route.canonical if route else "unmatched", "budget_s": budget}})
        return web.json_response({"message": DEADLINE_PASSED}, status=504)
