"""The real processes (`python -m <service>`) wired together on loopback ports, against a
given database and vhost: used by the e2e tests, the benchmark and the chaos run.
Every service logs to a file the caller can read."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from shared.settings import SANDBOX_WEBHOOK_SECRET
from testkit import infra
from testkit.api_client import ADMIN_TOKEN, STAFF_TOKEN
from testkit.infra import free_port

OLD_WEBHOOK_SECRET = "a6_previous_webhook_secret"

SERVICES = {
    "razorpay_sandbox": "SANDBOX_PORT",
    "ops.mail_catcher": "MAIL_CATCHER_PORT",  # its web page; SMTP on SMTP_PORT
    "order_service": "ORDER_SERVICE_PORT",
    "verification_service": "VERIFICATION_SERVICE_PORT",
    "webhook_service": "WEBHOOK_SERVICE_PORT",
    "notifier": "NOTIFIER_PORT",
    "gateway": "GATEWAY_PORT",
}


# One process whatever WORKERS says: their state lives in their memory.
SINGLETONS = frozenset({"razorpay_sandbox", "ops.mail_catcher"})


def replica_names(name: str, workers: int) -> list[str]:
    """`gateway`, `gateway-2`, …: the keys of a service's processes."""
    count = 1 if name in SINGLETONS else workers
    return [name] + [f"{name}-{i}" for i in range(2, count + 1)]


class Stack:
    """`WORKERS` in `extra_env` runs that many processes of every service (the sandbox
    aside) on one port each, as `make run` does."""

    def __init__(self, database_url: str, amqp_url: str, log_dir: Path, extra_env: dict,
                 code: Path | None = None):
        self.code = code  # run the services from this checkout (None: this one)
        self.ports = {name: free_port() for name in SERVICES}
        self.smtp_port = free_port()
        self.workers = int(extra_env.get("WORKERS", 1))
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        url = lambda name: f"http://127.0.0.1:{self.ports[name]}"  # noqa: E731
        self.gateway = url("gateway")
        self.sandbox = url("razorpay_sandbox")
        self.mail_catcher = url("ops.mail_catcher")
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "AMQP_URL": amqp_url,
            "RAZORPAY_BASE_URL": self.sandbox,
            "ORDER_SERVICE_URL": url("order_service"),
            "VERIFICATION_SERVICE_URL": url("verification_service"),
            "WEBHOOK_SERVICE_URL": url("webhook_service"),
            "SANDBOX_WEBHOOK_URL": f"{self.gateway}/api/razorpay/webhook",
            "SANDBOX_CALLBACK_URL": f"{self.gateway}/api/razorpay/callback",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "MAIL_POLL_SECONDS": "0.5",
            "SANDBOX_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
            "SANDBOX_WEBHOOK_MAX_DELAY_SECONDS": "2",
            "SANDBOX_WEBHOOK_MAX_ATTEMPTS": "30",
            "OUTBOX_SWEEP_SECONDS": "0.5",
            "RECONCILE_FIRST_DELAY_SECONDS": "3600",
            "RAZORPAY_TIMEOUT_SECONDS": "2",
            # the sandbox signs with the first; the second stands for a rotated-out secret
            "RAZORPAY_WEBHOOK_SECRET": f"{SANDBOX_WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
            "CHECKOUT_SUCCESS_URL": "http://shop.example/paid",
            "CHECKOUT_FAILURE_URL": "http://shop.example/failed",
            "CORS_ALLOWED_ORIGINS": "http://shop.example,http://localhost:3000",
            "PYTHONUNBUFFERED": "1",
            "MALLOC_ARENA_MAX": "1",  # as ops/runner.py runs the services
            "GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
            "ADMIN_API_TOKEN": ADMIN_TOKEN,
            "STAFF_API_TOKEN": STAFF_TOKEN,
            "SANDBOX_REFUND_DELAY_SECONDS": "1",
            "REFUND_POLL_SECONDS": "0.5",
            "DISPUTE_WATCH_SECONDS": "0.5",
            # as `make run`: the gateway reaches the services on Unix sockets
            "SOCKET_DIR": str(log_dir / "sockets"),
            **{var: str(self.ports[name]) for name, var in SERVICES.items()},
            **extra_env,
        }
        self.env.pop("RAZORPAY_KEY_ID", None)

    def start(self, name: str) -> None:
        """Every process of the service; each logs to `<key>.log`."""
        for worker, key in enumerate(replica_names(name, self.workers), start=1):
            log = open(self.log_dir / f"{key}.log", "ab")  # noqa: SIM115 - lives with the process
            self.procs[key] = subprocess.Popen(
                [sys.executable, "-m", name], env={**self.env, "WORKER": str(worker)},
                stdout=log, stderr=subprocess.STDOUT, cwd=self.code,
            )
            log.close()
        self.wait_healthy(name)

    def stop(self, name: str, kill: bool = False) -> None:
        """`name` is a service (all its processes) or one process's key (`gateway-2`)."""
        keys = [k for k in replica_names(name, self.workers) if k in self.procs] or [name]
        procs = [self.procs.pop(key) for key in keys]
        for proc in procs:
            proc.kill() if kill else proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)

    def wait_healthy(self, name: str, timeout: float = 60) -> None:
        """Until the port answers /healthz AND every replica listens on it itself: with
        SO_REUSEPORT the first replica up answers for all, and a replica still starting
        would miss the connections a test sends next."""
        port = self.ports[name]
        keys = replica_names(name, self.workers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for key in keys:
                if self.procs[key].poll() is not None:
                    raise RuntimeError(f"{key} exited: see {self.log_dir / (key + '.log')}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                            timeout=1) as answer:
                    if answer.status == 200 and all(
                            listens(self.procs[key].pid, port) for key in keys):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy within {timeout}s")

    def start_all(self) -> None:
        for name in SERVICES:
            self.start(name)

    def stop_all(self) -> None:
        for name in SERVICES:
            if any(key in self.procs for key in replica_names(name, self.workers)):
                self.stop(name)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_dir.glob("*.log"))


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a TCP socket listening on `port` (read from /proc)."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                cols = line.split()
                # local address "ADDR:PORT" in hex, state 0A = LISTEN, inode in column 9
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port \
                        and cols[9] in inodes:
                    return True
    return False


@contextmanager
def running_stack(database_url: str, amqp_url: str, extra_env: dict | None = None):
    """Every process up, with logs in a temporary folder; all stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="a6pay-e2e-") as log_dir:
        stack = Stack(database_url, amqp_url, Path(log_dir), extra_env or {})
        try:
            stack.start_all()
            yield stack
        finally:
            stack.stop_all()


@asynccontextmanager
async def own_stack(base_settings, extra_env: dict | None = None):
    """A stack on a database and vhost of its own, for tests no other stack's relay or
    notifier may help (or whose faults must not reach other tests): (stack, pool)."""
    vhost = infra.unique_name("a6pay_own_vhost")
    await asyncio.to_thread(infra.create_vhost, vhost)
    try:
        async with infra.own_database(base_settings) as (settings, pool):
            with running_stack(settings.database_url, infra.amqp_url(vhost), extra_env) as stack:
                yield stack, pool
    finally:
        await asyncio.to_thread(infra.delete_vhost, vhost)
