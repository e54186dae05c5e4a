"""Service-to-service bearer tokens (the admin API, the counter's staff): a configured token,
compared in constant time, checked before anything else of the request is read."""

from __future__ import annotations

import hmac

from aiohttp import web

from shared.http import HttpError


def require_bearer(request: web.Request, expected: str, *, disabled: str, required: str) -> None:
    """403 `disabled` while no token is configured; 401 `required` without the right one."""
    if not expected:
        raise HttpError(disabled, 403)
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode())
    if not ok:
        raise HttpError(required, 401, {"WWW-Authenticate": "Bearer"})
