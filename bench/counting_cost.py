"""What counting a request for /metrics costs, in process: aiohttp's per-request access-log
call with the request counter behind it (shared/metrics.py), on a routed payment-status
request, timed with process CPU time. Unlike the end-to-end comparison it does not move
with what else the machine runs, so it says how much of that comparison's difference is
the counting and how much is noise."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from shared import metrics

ROUTE = "/api/razorpay/payment-status/{booking_id}"


async def _answer(_: web.Request) -> web.Response:
    return web.json_response({"status": "paid", "paid": True})


async def _routed_request() -> web.Request:
    app = web.Application()
    app.router.add_get(ROUTE, _answer)
    app.freeze()
    request = make_mocked_request("GET", "/api/razorpay/payment-status/1", app=app)
    match = await app.router.resolve(request)
    match.add_app(app)
    request._match_info = match
    return request


def _counting_us(logger, request, response, n: int) -> float:
    """What aiohttp does per request when an access logger is set (two loop clock reads
    and the call), and what the counter does with it."""
    loop = asyncio.get_running_loop()
    started = time.process_time()
    for _ in range(n):
        start = loop.time()
        logger.log(request, response, loop.time() - start)
    return (time.process_time() - started) / n * 1e6


async def counting_us(rounds: int = 6, n: int = 50_000) -> float:
    """Microseconds of CPU counting one request costs in one service (median)."""
    request = await _routed_request()
    response = web.json_response({"status": "paid"})
    args = metrics.handler_args("bench", True)
    logger = args["access_log_class"](logging.getLogger("bench.counting"), "")
    return statistics.median(_counting_us(logger, request, response, n) for _ in range(rounds))
