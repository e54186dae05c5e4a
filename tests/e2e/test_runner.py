"""`make run`'s runner: migrate, seed a demo booking, start everything, stop on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ops.api_client import call
from ops.infra import free_port
from ops.stack import SERVICES

pytestmark = pytest.mark.e2e


def read_until(proc, marker: str, timeout: float = 60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in runner output: {lines}")


async def test_runner_starts_everything_and_sigterm_stops_it_all(
    database_url, amqp_url, http, tmp_path
):
    ports = {var: str(free_port()) for var in SERVICES.values()}
    env = {**os.environ, **ports, "DATABASE_URL": database_url, "AMQP_URL": amqp_url,
           "RAZORPAY_BASE_URL": f"http://127.0.0.1:{ports['SANDBOX_PORT']}"}
    env.pop("RAZORPAY_KEY_ID", None)
    for name in ("ORDER_SERVICE", "VERIFICATION_SERVICE", "WEBHOOK_SERVICE"):
        env[f"{name}_URL"] = f"http://127.0.0.1:{ports[name + '_PORT']}"
    stderr = open(tmp_path / "runner.err", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "ops.runner"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    try:
        lines = read_until(proc, "Ctrl-C stops everything.")
        demo = json.loads(next(ln for ln in lines if ln.startswith("Demo booking:"))
                          .split(":", 1)[1])
        assert any("(up)" in ln for ln in lines), lines
        gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
        status, body, _ = await call(http, "POST", f"{gateway}/api/razorpay/create-order",
                                     json={"booking_id": demo["booking_id"],
                                           "customer_id": demo["customer_id"],
                                           "amount": demo["amount"]})
        assert status == 200, body
        children = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) >= 1 + len(SERVICES), children  # the runner and every service
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
        if not left:
            break
        time.sleep(0.2)
    assert left == [], "services outlived SIGTERM to the process group"
    stderr.close()
    errors = (tmp_path / "runner.err").read_text()
    assert "Traceback" not in errors, errors[-3000:]
