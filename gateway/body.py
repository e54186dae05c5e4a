"""Read a request body whole, but never more than the configured limit."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.errors import BODY_TIMEOUT
from shared.http import BODY_TOO_LARGE, HttpError


def reject_declared_oversize(request: web.Request, limit: int) -> None:
    """413 before reading anything when Content-Length already says too much."""
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(BODY_TOO_LARGE, 413)


async def read_body(request: web.Request, limit: int, timeout_seconds: float) -> bytes:
    """The body bytes exactly as sent; 413 once a chunked body passes `limit`.

    Counting here (rather than trusting Content-Length) covers chunked uploads, and the
    timeout stops a client that trickles a body from holding the request open.
    """
    if not request.body_exists:  # a GET (payment-status): no stream to wait on
        return b""
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_seconds):
            while chunk := await request.content.readany():
                body.extend(chunk)
                if len(body) > limit:
                    raise HttpError(BODY_TOO_LARGE, 413)
    except TimeoutError:
        raise HttpError(BODY_TIMEOUT, 408) from None
    except (web.RequestPayloadError, HttpProcessingError):
        # e.g. Content-Encoding: gzip with a body that is not gzip
        # the stream is unusable: tell the client not to reuse this connection
        raise HttpError("Request body could not be read", 400, {"Connection": "close"}) from None
    return bytes(body)
