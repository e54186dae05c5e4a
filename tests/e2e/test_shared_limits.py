"""Two real gateways (`python -m gateway`, each on its own GATEWAY_PORT) in front of the
same services with the same REDIS_URL: one client's limit holds across both. A gateway
whose Redis is away lets requests through, warns once, and says so in /readyz."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest

from testkit import infra
from testkit.api_client import call

pytestmark = pytest.mark.e2e

REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def gateway_process(stack, log_path, **env):
    """`python -m gateway` on a port of its own, in front of the stack's services."""
    port = infra.free_port()
    env = {**stack.env, "GATEWAY_PORT": str(port), "LOG_LEVEL": "INFO", **env}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def shared_env():
    """This test's own key prefix: no other run's counts reach it."""
    return {"REDIS_URL": REDIS_URL, "RATE_LIMIT_REDIS_PREFIX": infra.unique_name("a6pay_e2e")}


async def test_one_client_over_the_limit_through_two_gateways_gets_429(
    stack, http, tmp_path, shared_env
):
    with gateway_process(stack, tmp_path / "a.log", **shared_env) as first, \
            gateway_process(stack, tmp_path / "b.log", **shared_env) as second:
        me = "198.51.100.77"
        for i in range(100):  # alternating: each gateway alone sees only 50
            status, _, _ = await call(http, "POST", f"{(first, second)[i % 2]}"
                                      "/api/razorpay/create-order", client=me, json={})
            assert status == 400  # within the limit: the service answered
        for gateway in (first, second):
            status, body, headers = await call(http, "POST", f"{gateway}/api/razorpay/"
                                               "create-order", client=me, json={})
            assert status == 429 and body["message"].startswith("Too many requests")
            assert 1 <= int(headers["Retry-After"]) <= 60
        other = await call(http, "POST", f"{second}/api/razorpay/create-order",
                           client="198.51.100.78", json={})
        assert other[0] == 400

        # An IPv6 client is one /64: walking its addresses gives no fresh budget.
        for i in range(100):
            status, _, _ = await call(http, "POST", f"{(first, second)[i % 2]}/api/razorpay/"
                                      "create-order", client=f"2001:db8:7:7::{i + 1:x}", json={})
            assert status == 400
        status, _, _ = await call(http, "POST", f"{first}/api/razorpay/create-order",
                                  client="2001:db8:7:7:ffff::1", json={})
        assert status == 429
        ready = await call(http, "GET", f"{first}/readyz")
        assert ready[0] == 200 and ready[1]["checks"]["rate_limiter"] == "ok"


async def test_a_gateway_without_its_redis_fails_open_warns_once_and_says_so(
    stack, http, tmp_path
):
    log = tmp_path / "gateway.log"
    dead = f"redis://127.0.0.1:{infra.free_port()}/0"
    with gateway_process(stack, log, REDIS_URL=dead) as gateway:
        me = "198.51.100.79"
        answers = [await call(http, "POST", f"{gateway}/api/razorpay/create-order",
                              client=me, json={}) for _ in range(130)]
        assert {a[0] for a in answers} == {400}  # payments go on: nothing refused
        status, body, _ = await call(http, "GET", f"{gateway}/readyz")
        assert status == 200 and body["status"] == "ready", body  # still serving
        assert body["checks"]["rate_limiter"].startswith("degraded: Redis unreachable")
        assert "failing open" in body["checks"]["rate_limiter"]
    warnings = [ln for ln in log.read_text().splitlines() if "Redis unreachable" in ln]
    assert len(warnings) == 1, warnings
