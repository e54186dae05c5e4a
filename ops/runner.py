"""`make run`: migrate, seed a demo booking, then run every service in the foreground.

Children run in this process's group; SIGINT/SIGTERM stops them all. A child that dies is
restarted (with back-off), as a process supervisor would in production.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import urllib.request

from ops.cli import demo_booking, migrate_db
from shared.logging import setup_logging
from shared.settings import load_settings

log = logging.getLogger("runner")
LIVE_RAZORPAY = "https://api.razorpay.com"


def child_environment() -> tuple[dict[str, str], bool]:
    """The environment for every service, and whether the bundled sandbox must run."""
    env = dict(os.environ)
    use_sandbox = not env.get("RAZORPAY_KEY_ID")
    if not use_sandbox:
        env.setdefault("RAZORPAY_BASE_URL", LIVE_RAZORPAY)
    port = env.get("GATEWAY_PORT", "8080")
    env.setdefault("SANDBOX_WEBHOOK_URL", f"http://127.0.0.1:{port}/api/razorpay/webhook")
    env.setdefault("CHECKOUT_SUCCESS_URL", f"http://127.0.0.1:{port}/payment/success")
    env.setdefault("CHECKOUT_FAILURE_URL", f"http://127.0.0.1:{port}/payment/failure")
    env["PYTHONUNBUFFERED"] = "1"
    return env, use_sandbox


def services(use_sandbox: bool) -> list[str]:
    names = ["order_service", "verification_service", "webhook_service", "notifier", "gateway"]
    return (["razorpay_sandbox"] if use_sandbox else []) + names


async def supervise(name: str, env: dict[str, str], stopping: asyncio.Event) -> None:
    delay = 1.0
    while not stopping.is_set():
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", name, env=env)
        started = time.monotonic()
        waiter = asyncio.create_task(proc.wait())
        stopper = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            await _stop(proc, waiter)
            return
        stopper.cancel()
        log.warning("%s exited with %s; restarting", name, proc.returncode)
        delay = 1.0 if time.monotonic() - started > 30 else min(delay * 2, 30)
        await asyncio.sleep(delay)


async def _stop(proc: asyncio.subprocess.Process, waiter: asyncio.Task) -> None:
    """A signal to the process group has reached the child too: give it a moment to exit
    by itself, because a second SIGTERM in the middle of aiohttp's shutdown aborts it."""
    for signal_it, grace in ((None, 3), (proc.terminate, 15), (proc.kill, None)):
        if proc.returncode is not None:
            return
        if signal_it is not None:
            signal_it()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), grace)
        except TimeoutError:
            continue


def wait_healthy(url: str, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


async def main() -> None:
    settings = load_settings()
    setup_logging("runner", settings.log_level, settings.secrets)
    env, use_sandbox = child_environment()
    print(json.dumps(await migrate_db(settings)), flush=True)
    # ₹100.00: on a fresh database this is booking 1 of customer 1, so the API document's
    # own test commands (booking 1, customer 1, amount 100.00) work as written.
    print("Demo booking:", json.dumps(await demo_booking(settings, 100.00)), flush=True)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    tasks = [asyncio.create_task(supervise(n, env, stopping)) for n in services(use_sandbox)]

    # The banner is printed once every service answers, so each URL in it works as printed.
    ports = {name: getattr(settings, f"{name.removeprefix('razorpay_')}_port")
             for name in services(use_sandbox)}
    healthy = await asyncio.gather(*(
        asyncio.to_thread(wait_healthy, f"http://127.0.0.1:{port}/healthz")
        for port in ports.values()))
    for name, up in zip(ports, healthy, strict=True):
        if not up:
            print(f"{name} is NOT answering yet (see its log above)", flush=True)
    gateway = f"http://127.0.0.1:{settings.gateway_port}"
    print(f"A6 Pay gateway:  {gateway}  ({'up' if all(healthy) else 'NOT all up yet'})",
          flush=True)
    if use_sandbox:
        print(f"Razorpay sandbox: http://127.0.0.1:{settings.sandbox_port}"
              f"  (checkout page: /checkout?order_id=...)", flush=True)
    else:
        print(f"Razorpay: {env['RAZORPAY_BASE_URL']} with the configured keys", flush=True)
    print("Ctrl-C stops everything.", flush=True)
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
