"""Request id, client address and access log; the JSON errors come from shared/http.py."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time

from aiohttp import web

from gateway import keys
from gateway.client_ip import client_address
from shared import private_access
from shared.logging import log_ctx

access_logger = logging.getLogger("gateway.access")

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Routes called thousands of times a second: a successful call is logged at DEBUG only (a
# JSON log line costs more CPU than proxying the call). Their failures stay at INFO, and
# the webhook service logs every delivery it handles anyway.
QUIET_ROUTES = frozenset({"payment_status", "webhook"})


# A fresh id is this process's random prefix and a counter: unique across replicas and
# restarts like a uuid4, without a read of the OS's random source on every request.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def request_id_from(header: str | None) -> str:
    """The client's X-Request-Id if it is safe to echo and log, else a fresh one."""
    if header is not None and _REQUEST_ID_RE.fullmatch(header):
        return header
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


@web.middleware
async def access_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request_id_from(request.headers.get("X-Request-Id"))
    request[keys.REQUEST_ID] = request_id
    peer = private_access.socket_peer(request)  # the TCP peer, never a Forwarded header
    request[keys.CLIENT] = client_address(
        request.remote if peer is None else peer,
        request.headers.getall("X-Forwarded-For", []),
        request.app[keys.TRUSTED_PROXIES],
    )
    status = 499  # stays if the client goes away mid-request (handler cancelled)
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        # match_info is a dict of path params: empty (falsy) for /healthz, so no truthiness test
        route = request.match_info.route.name if request.match_info is not None else None
        level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
        if access_logger.isEnabledFor(level):
            # Never the query string, the body or headers: they can carry ids and signatures.
            access_logger.log(
                level,
                "request",
                extra=log_ctx(
                    method=request.method,
                    route=route or "unmatched",
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    request_id=request_id,
                    client=request[keys.CLIENT],
                ),
            )

