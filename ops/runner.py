"""`make run`: migrate, seed a demo booking, then run every service in the foreground.

Children run in this process's group; SIGINT/SIGTERM stops them all. A child that dies is
restarted (with back-off), as a process supervisor would in production.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import urllib.request
from urllib.parse import urlencode

from ops.cli import demo_booking, migrate_db
from shared.logging import setup_logging
from shared.settings import load_settings

log = logging.getLogger("runner")
LIVE_RAZORPAY = "https://api.razorpay.com"


MAIL_CATCHER = "ops.mail_catcher"
STOREFRONT = "ops.storefront"
RAZORPAY_CHECKOUT_SCRIPT = "https://checkout.razorpay.com/v1/checkout.js"


def child_environment() -> tuple[dict[str, str], bool]:
    """The environment for every service, and whether the bundled sandbox must run.
    With SMTP_HOST unset, mail goes to the bundled catcher (see `services`)."""
    env = dict(os.environ)
    use_sandbox = not env.get("RAZORPAY_KEY_ID")
    if not env.get("SMTP_HOST"):
        env["SMTP_HOST"] = "127.0.0.1"
        for name in ("SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS"):
            env.pop(name, None)
    if not use_sandbox:
        env.setdefault("RAZORPAY_BASE_URL", LIVE_RAZORPAY)
    port = env.get("GATEWAY_PORT", "8080")
    env.setdefault("SANDBOX_WEBHOOK_URL", f"http://127.0.0.1:{port}/api/razorpay/webhook")
    env.setdefault("SANDBOX_CALLBACK_URL", f"http://127.0.0.1:{port}/api/razorpay/callback")
    env.setdefault("CHECKOUT_SUCCESS_URL", f"http://127.0.0.1:{port}/payment/success")
    env.setdefault("CHECKOUT_FAILURE_URL", f"http://127.0.0.1:{port}/payment/failure")
    # The demo storefront is a page of another origin, as a real site is: the gateway lets
    # it (and a frontend developer's own dev server on :3000) call the frontend's endpoints.
    storefront = env.get("STOREFRONT_PORT", "8070")
    env.setdefault("CORS_ALLOWED_ORIGINS", f"http://127.0.0.1:{storefront},"
                   f"http://localhost:{storefront},http://localhost:3000")
    env.setdefault("STOREFRONT_GATEWAY_URL", f"http://127.0.0.1:{port}")
    sandbox = f"http://127.0.0.1:{env.get('SANDBOX_PORT', '8090')}"
    env.setdefault("STOREFRONT_CHECKOUT_SCRIPT_URL", f"{sandbox}/v1/checkout.js" if use_sandbox
                   else RAZORPAY_CHECKOUT_SCRIPT)
    env["PYTHONUNBUFFERED"] = "1"
    # One malloc arena per process: threads (Razorpay calls, pass drawing) allocate while
    # holding the GIL, so per-thread arenas only add memory.
    env.setdefault("MALLOC_ARENA_MAX", "1")
    return env, use_sandbox


def services(use_sandbox: bool, use_catcher: bool = False, workers: int = 1,
             use_storefront: bool = False) -> list[str]:
    """One entry per process: `workers` of each service (they share its port, and the
    notifiers share its queue); one sandbox and one mail catcher, whose state is in memory;
    the demo storefront, a development aid like the catcher (compose runs neither)."""
    names = ["order_service", "verification_service", "webhook_service", "notifier", "gateway"]
    return ((["razorpay_sandbox"] if use_sandbox else [])
            + ([MAIL_CATCHER] if use_catcher else [])
            + ([STOREFRONT] if use_storefront else []) + names * workers)


def health_port(name: str, settings) -> int:
    if name == MAIL_CATCHER:
        return settings.mail_catcher_port
    if name == STOREFRONT:
        return settings.storefront_port
    return getattr(settings, f"{name.removeprefix('razorpay_')}_port")


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


def wait_healthy(url: str, seconds: float = 90) -> bool:
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
    use_catcher = not os.environ.get("SMTP_HOST")
    env, use_sandbox = child_environment()
    print(json.dumps(await migrate_db(settings)), flush=True)
    # ₹100.00: on a fresh database this is booking 1 of customer 1, so the API document's
    # own test commands (booking 1, customer 1, amount 100.00) work as written.
    booking = await demo_booking(settings, 100.00)
    print("Demo booking:", json.dumps(booking), flush=True)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    names = services(use_sandbox, use_catcher, settings.workers, use_storefront=True)
    with socket_dir(env):
        replicas = collections.Counter()
        tasks = []
        for name in names:
            replicas[name] += 1  # each process knows which of the WORKERS it is (its socket)
            tasks.append(asyncio.create_task(
                supervise(name, {**env, "WORKER": str(replicas[name])}, stopping)))
        # The banner is printed once every service answers, so each URL in it works as printed.
        ports = {name: health_port(name, settings) for name in names}
        healthy = await asyncio.gather(*(
            asyncio.to_thread(wait_healthy, f"http://127.0.0.1:{port}/healthz")
            for port in ports.values()))
        for name, up in zip(ports, healthy, strict=True):
            if not up:
                print(f"{name} is NOT answering yet (see its log above)", flush=True)
        gateway = f"http://127.0.0.1:{settings.gateway_port}"
        # Every URL printed answers as printed (tests/e2e/test_runner.py follows each one).
        state = "up" if all(healthy) else "NOT all up yet"
        print(f"A6 Pay gateway:  {gateway}/openapi.json  ({state})  the API: /api/razorpay/..."
              f"  (WORKERS={settings.workers}: processes of each service)", flush=True)
        if use_sandbox:
            sandbox = f"http://127.0.0.1:{settings.sandbox_port}"
            print(f"Razorpay sandbox: pay an order at {sandbox}/checkout?order_id=<order_id"
                  " from create-order>", flush=True)
        else:
            print(f"Razorpay: {env['RAZORPAY_BASE_URL']} with the configured keys", flush=True)
        demo = urlencode({k: booking[k] for k in ("booking_id", "customer_id", "amount")})
        print(f"Storefront:      http://127.0.0.1:{settings.storefront_port}/?{demo}  (the"
              " seed's two Checkout flows on the demo booking, from an origin of its own)",
              flush=True)
        if use_catcher:
            print(f"Mail catcher:    http://127.0.0.1:{settings.mail_catcher_port}/  (every mail"
                  f" sent, with its passes; SMTP on 127.0.0.1:{settings.smtp_port})", flush=True)
        else:
            print(f"Mail: SMTP {settings.smtp_host}:{settings.smtp_port}", flush=True)
        print("Admin API (cancel, refund): " + (
            "on, with your ADMIN_API_TOKEN" if settings.admin_api_token
            else "off; start with ADMIN_API_TOKEN=<a long random string> to use it"), flush=True)
        print(f"Counter page:    {gateway}/staff  (scan passes; " + (
            "sign in with your STAFF_API_TOKEN)" if settings.staff_api_token
            else "start with STAFF_API_TOKEN=<a long random string> to sign in)"), flush=True)
        print("Ctrl-C stops everything.", flush=True)

        await asyncio.gather(*tasks)


@contextlib.contextmanager
def socket_dir(env: dict[str, str]):
    """Every process here is on this machine: the gateway reaches the services on Unix
    sockets (shared/local_sockets.py) in a folder of our own, removed on the way out,
    unless SOCKET_DIR says otherwise ("" for TCP)."""
    if "SOCKET_DIR" in env:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="a6pay-sockets-") as folder:
        env["SOCKET_DIR"] = folder
        yield


if __name__ == "__main__":
    asyncio.run(main())
