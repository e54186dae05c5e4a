"""Forward one request to an upstream service and hand its answer back unchanged."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.errors import INTERNAL, UNAVAILABLE, UPSTREAM_TIMEOUT, GatewayError, json_error

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


def upstream_url(base_url: str, rel_url: URL) -> URL:
    """`base_url` + the request's path and query, still percent-encoded as received."""
    return URL(base_url.rstrip("/") + str(rel_url), encoded=True)


def upstream_headers(
    client_headers: Mapping[str, str],
    request_id: str,
    customer_id: str | None,
    extra: tuple[str, ...] = (),
) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name in FORWARDED_REQUEST_HEADERS + extra:
        if name in client_headers:
            headers[name] = client_headers[name]
    headers["X-Request-Id"] = request_id
    if customer_id is not None:
        headers[CUSTOMER_ID_HEADER] = customer_id
    return headers


# aiohttp adds these unless told not to: Content-Type would label a body the client sent
# untyped as octet-stream; the others (Accept-Encoding, User-Agent, a default Accept) mean
# nothing to our services and cost work on every call. The client's own Accept still goes.
_NO_AUTO_HEADERS = ("Content-Type", "Accept", "Accept-Encoding", "User-Agent")


@functools.lru_cache(maxsize=16)
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)  # immutable: one per value, not per request


async def forward(
    session: aiohttp.ClientSession,
    *,
    method: str,
    url: URL,
    headers: CIMultiDict[str],
    body: bytes,
    timeout_seconds: float,
) -> web.Response:
    """Send the request; 503 if the service cannot be reached, 504 if it is too slow."""
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,  # the callback's 303 is for the browser, not for us
            timeout=_client_timeout(timeout_seconds),
            skip_auto_headers=_NO_AUTO_HEADERS,
        ) as upstream:
            payload = await upstream.read()
            status, reason = upstream.status, upstream.reason
            returned = {
                name: upstream.headers[name]
                for name in RETURNED_RESPONSE_HEADERS
                if name in upstream.headers
            }
    except aiohttp.ConnectionTimeoutError:
        # Never connected, so the service cannot have acted: "unavailable", safe to retry.
        raise GatewayError(503, UNAVAILABLE) from None
    except TimeoutError:
        raise GatewayError(504, UPSTREAM_TIMEOUT) from None
    except aiohttp.ClientError:
        raise GatewayError(503, UNAVAILABLE) from None
    if status >= 500 and not returned.get("Content-Type", "").startswith("application/json"):
        # A crashed service's plain-text/HTML page must not reach the client; the status
        # stays, so Razorpay still retries a failed webhook.
        return json_error(status, UNAVAILABLE if status in (502, 503, 504) else INTERNAL)
    return web.Response(body=payload, status=status, reason=reason, headers=returned)
