"""What the metrics middleware itself costs per request, in process: the same aiohttp app
(a status-like route answering a small JSON) dispatched with and without
`shared.metrics.install`, alternated, timed with process CPU time. Unlike the end-to-end
comparison it does not move with what else the machine runs, so it says how much of that
comparison's difference is the middleware and how much is noise."""

from __future__ import annotations

import statistics
import time

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from shared import metrics

ROUTE = "/api/razorpay/payment-status/{booking_id}"


async def _answer(_: web.Request) -> web.Response:
    return web.json_response({"status": "paid", "paid": True})


def _app(enabled: bool) -> web.Application:
    app = web.Application()
    app.router.add_get(ROUTE, _answer)
    metrics.install(app, "bench", enabled)
    app.freeze()
    return app


async def _dispatch_us(app: web.Application, n: int) -> float:
    request = make_mocked_request("GET", "/api/razorpay/payment-status/1", app=app)
    match = await app.router.resolve(request)
    match.add_app(app)
    request._match_info = match  # resolved once: only the dispatch is timed
    started = time.process_time()
    for _ in range(n):
        await app._handle(request)
    return (time.process_time() - started) / n * 1e6


async def middleware_us(rounds: int = 6, n: int = 20_000) -> float:
    """Microseconds of CPU the middleware adds to one request in one service (median)."""
    apps = {True: _app(True), False: _app(False)}
    deltas = []
    for _ in range(rounds):
        deltas.append(await _dispatch_us(apps[True], n) - await _dispatch_us(apps[False], n))
    return statistics.median(deltas)
