"""Forward one request to an upstream service and hand its answer back unchanged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiohttp import web

from gateway.errors import BAD_HEADER, UNAVAILABLE, UPSTREAM_TIMEOUT
from gateway.upstream import (
    Answer,
    Disconnected,
    NotSent,
    Upstream,
    UpstreamPool,
    UpstreamTimeout,
)
from shared.http import INTERNAL, HttpError, json_error

# Only these client headers reach a service; everything else (cookies, Host, a forged
# X-A6-Customer-Id) is dropped by construction rather than by a deny-list.
FORWARDED_REQUEST_HEADERS = (
    "Content-Type",
    "X-Razorpay-Signature",
    "X-Razorpay-Event-Id",
    "Accept",
)
# The admin API's token and idempotency key reach order_service, which checks them.
ADMIN_HEADERS = ("Authorization", "Idempotency-Key")
RETURNED_RESPONSE_HEADERS = ("Content-Type", "Location", "Retry-After", "WWW-Authenticate")
CUSTOMER_ID_HEADER = "X-A6-Customer-Id"


def upstream_target(request: web.Request) -> str:
    """The request's path and query, still percent-encoded as received."""
    raw = request.raw_path
    return raw if raw.startswith("/") else str(request.rel_url)  # absolute-form: its path


def upstream_headers(
    client_headers: Mapping[str, str],
    request_id: str,
    customer_id: str | None,
    extra: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    headers = [(name, client_headers[name]) for name in FORWARDED_REQUEST_HEADERS + extra
               if name in client_headers]
    headers.append(("X-Request-Id", request_id))
    if customer_id is not None:
        headers.append((CUSTOMER_ID_HEADER, customer_id))
    return headers


# The names of the returned headers as the answer's dict holds them (lower case).
_RETURNED = tuple((name, name.lower()) for name in RETURNED_RESPONSE_HEADERS)


async def send(pool: UpstreamPool, upstream: Upstream, method: str, target: str,
               headers: Iterable[tuple[str, str]], body: bytes,
               timeout_seconds: float) -> Answer:
    """The service's answer; 503 if the service cannot be reached, 504 if it is too slow."""
    try:
        return await pool.request(upstream, method, target, headers, body, timeout_seconds)
    except (NotSent, Disconnected):
        # NotSent never reached the service, so it cannot have acted: safe to retry.
        raise HttpError(UNAVAILABLE, 503) from None
    except UpstreamTimeout:
        raise HttpError(UPSTREAM_TIMEOUT, 504) from None
    except ValueError:  # a header value with a line break: never written
        raise HttpError(BAD_HEADER, 400) from None


def response_of(answer: Answer) -> web.Response:
    """The service's answer for the client, but never a crashed service's own error page."""
    returned = {name: answer.headers[key] for name, key in _RETURNED if key in answer.headers}
    if answer.status >= 500 and not returned.get("Content-Type", "").startswith(
            "application/json"):
        # A crashed service's plain-text/HTML page must not reach the client; the status
        # stays, so Razorpay still retries a failed webhook.
        return json_error(answer.status,
                          UNAVAILABLE if answer.status in (502, 503, 504) else INTERNAL)
    return web.Response(body=answer.body, status=answer.status, reason=answer.reason or None,
                        headers=returned)
