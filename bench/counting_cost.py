"""What counting a request for /metrics costs, in process: aiohttp's per-request access-log
call with the request counter behind it (shared/metrics.py), on a routed payment-status
request, timed with process CPU time. Unlike the end-to-end comparison it does not move
with what else the machine runs, so it says how much of that comparison's difference is
the counting and how much is noise."""

from __future__ import annotations

import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from shared import metrics
from testkit.stack import Stack

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


def instructions_per_request(database_url: str, amqp_url: str, env: dict, metrics: bool,
                             status_range: tuple[int, int], requests: int = 600) -> float:
    """Instructions order_service executes per payment-status request, counted by
    valgrind's callgrind (instrumentation switched on only while the requests run, one at
    a time): unlike time, an instruction count is the same whatever else the machine
    does, and unlike the in-process timing above it includes what a real server does
    around the counting (its caches cold, every other request's work between)."""
    with tempfile.TemporaryDirectory(prefix="a6pay-callgrind-") as tmp:
        stack = Stack(database_url, amqp_url, Path(tmp), {
            **env, "METRICS_ENABLED": "true" if metrics else "false"})
        port = stack.ports["order_service"]
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, "-m", "order_service"],
            env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, proc)
            low, high = status_range
            urls = [f"{base}/api/razorpay/payment-status/{low + i % (high - low)}"
                    for i in range(requests + 100)]
            for url in urls[:100]:  # warm: pool filled, statements prepared
                _get(url)
            _callgrind(proc.pid, "-i", "on")
            for url in urls[100:]:
                _get(url)
            _callgrind(proc.pid, "-d")
            _callgrind(proc.pid, "-i", "off")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        totals = [int(line.split()[1]) for dump in Path(tmp).glob("callgrind.out*")
                  for line in dump.read_text().splitlines() if line.startswith("totals:")]
    return max(totals) / requests


def _wait_healthy(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # valgrind runs Python some 50 times slower
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            _get(f"{base}/healthz")
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("order_service under callgrind did not start")


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=30) as answer:
        answer.read()


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)
