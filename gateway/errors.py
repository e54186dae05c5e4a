"""The gateway's own error messages; every error leaves through shared/http.py as JSON."""

from __future__ import annotations

from aiohttp import web

from shared.http import json_error

BODY_TIMEOUT = "Request body not received in time"
UNAVAILABLE = "Service temporarily unavailable"
UPSTREAM_TIMEOUT = "Upstream service timed out"
FORBIDDEN = "Forbidden"
BAD_HEADER = "Invalid request header"


def too_many_requests(retry_after_seconds: int) -> web.Response:
    return json_error(
        429,
        f"Too many requests. Try again in {retry_after_seconds} seconds.",
        headers={"Retry-After": str(retry_after_seconds)},
    )
