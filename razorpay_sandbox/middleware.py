"""Errors as Razorpay JSON, and what stands in front of every /v1 view: counting,
injected faults, then Basic auth (in that order, as a network fault comes before auth)."""

from __future__ import annotations

import base64
import hmac
import logging

from aiohttp import hdrs, web

from razorpay_sandbox import faults
from razorpay_sandbox.checkout_script import SCRIPT_PATH
from razorpay_sandbox.errors import ApiError, invalid_api_key, server_error
from razorpay_sandbox.keys import FAULTS, SETTINGS, STORE

log = logging.getLogger(__name__)


def error_response(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error_response(
                ApiError(
                    "The requested URL was not found on the server.",
                    status=404,
                    reason="NA",
                    step="NA",
                    source="NA",
                )
            )
        return error_response(ApiError(exc.reason, status=exc.status, reason="NA", step="NA"))
    except Exception:
        log.exception("unhandled error in sandbox")
        return error_response(server_error())


@web.middleware
async def api_middleware(request: web.Request, handler) -> web.StreamResponse:
    # Razorpay's Checkout script shares the /v1 prefix but is public, as Razorpay's is
    if not request.path.startswith(faults.API_PREFIX + "/") or request.path == SCRIPT_PATH:
        return await handler(request)
    request.app[STORE].api_requests += 1
    rule = request.app[FAULTS].take(request.path)
    if rule is not None:
        return await faults.apply(rule, request, lambda r: _authenticated(r, handler))
    return await _authenticated(request, handler)


async def _authenticated(request: web.Request, handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    login, password = basic_credentials(request.headers.get(hdrs.AUTHORIZATION, ""))
    key_ok = hmac.compare_digest(login.encode(), settings.razorpay_key_id.encode())
    secret_ok = hmac.compare_digest(password.encode(), settings.razorpay_key_secret.encode())
    if not (key_ok and secret_ok):
        raise invalid_api_key()
    return await handler(request)


def basic_credentials(header: str) -> tuple[str, str]:
    """(key id, secret) from a Basic Authorization header; empty strings if unreadable."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return "", ""
    login, _, password = decoded.partition(":")
    return login, password
