"""The gateway's own error bodies: always JSON with a `message`, never HTML."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

NOT_FOUND = "Not found"
METHOD_NOT_ALLOWED = "Method not allowed"
BODY_TOO_LARGE = "Request body too large"
BODY_TIMEOUT = "Request body not received in time"
UNAVAILABLE = "Service temporarily unavailable"
UPSTREAM_TIMEOUT = "Upstream service timed out"
FORBIDDEN = "Forbidden"
INTERNAL = "Internal server error"
BAD_HEADER = "Invalid request header"


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


def too_many_requests(retry_after_seconds: int) -> web.Response:
    return json_error(
        429,
        f"Too many requests. Try again in {retry_after_seconds} seconds.",
        headers={"Retry-After": str(retry_after_seconds)},
    )


class GatewayError(Exception):
    """Raised anywhere below a handler; the error middleware turns it into JSON."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return json_error(self.status, self.message, self.headers)
