"""The chaos run's own world: a fresh database on the machine's PostgreSQL, a private
RabbitMQ node (stopping it disturbs nobody else), the stack of real processes, and a tap
in front of the webhook endpoint that records what the gateway answered the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from bench.chaos.record import Recorder
from shared.db import create_database_if_missing, create_pool, migrate
from shared.settings import load_settings
from testkit import infra
from testkit.local_services import PrivateRabbitMQ
from testkit.stack import Stack

log = logging.getLogger("bench.chaos")

STACK_ENV = {
    # Razorpay keeps retrying a webhook the gateway failed to take, quickly here
    "SANDBOX_WEBHOOK_MAX_ATTEMPTS": "50",
    "SANDBOX_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "SANDBOX_WEBHOOK_MAX_DELAY_SECONDS": "3",
    # reconciliation finds what no webhook and no browser reported, within the run
    "RECONCILE_FIRST_DELAY_SECONDS": "20",
    "RECONCILE_POLL_SECONDS": "2",
    "RECONCILE_MAX_GAP_SECONDS": "60",
    "OUTBOX_SWEEP_SECONDS": "1",
    "LOG_LEVEL": "INFO",
    # the machine's PostgreSQL (max_connections 100) is shared with CI and test runs
    "DB_POOL_MAX": "6",
}


class WebhookTap:
    """Forwards the sandbox's webhook deliveries to the gateway, noting each answer."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.target = ""
        self.port = infra.free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/razorpay/webhook"
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/api/razorpay/webhook", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def _forward(self, request: web.Request) -> web.Response:
        names = ("Content-Type", "X-Razorpay-Signature", "X-Razorpay-Event-Id")
        headers = {n: request.headers[n] for n in names if n in request.headers}
        status, body = await self.recorder.call(
            self._http, "webhook (sandbox)", "POST", self.target, data=await request.read(),
            headers=headers)
        if status is None:
            return web.json_response({"tap": "no answer from the gateway"}, status=502)
        return web.json_response(body, status=status)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()


def stop_at_once(stack: Stack) -> None:
    """SIGTERM to every service at once; SIGKILL to any still there 20 s later."""
    procs = list(stack.procs.values())
    stack.procs.clear()
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ChaosEnv:
    def __init__(self, recorder: Recorder, keep: bool):
        self.recorder = recorder
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix="a6pay-chaos-"))
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir()
        self.database_url = infra.database_url(infra.unique_name("a6pay_chaos"))
        self.broker: PrivateRabbitMQ | None = None
        self.stack: Stack | None = None
        self.pool: asyncpg.Pool | None = None
        self.tap = WebhookTap(recorder)
        self._db_created = False

    async def start(self) -> None:
        await create_database_if_missing(self.database_url)
        self._db_created = True
        await migrate(self.database_url)
        self.broker = PrivateRabbitMQ(self.workdir)
        await asyncio.to_thread(self.broker.start)
        await self.tap.start()
        self.stack = Stack(self.database_url, self.broker.url, self.log_dir,
                           {**STACK_ENV, "SANDBOX_WEBHOOK_URL": self.tap.url})
        self.tap.target = f"{self.stack.gateway}/api/razorpay/webhook"
        await asyncio.to_thread(self.stack.start_all)
        self.pool = await create_pool(load_settings(database_url=self.database_url,
                                                    db_pool_max=4))

    async def close(self) -> None:
        """Stops every process; drops the database and the files unless --keep."""
        if self.pool is not None:
            await self.pool.close()
        if self.stack is not None:
            await asyncio.to_thread(stop_at_once, self.stack)
        await self.tap.close()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.broker.destroy)
        if self.keep:
            log.warning("kept: database %s, service logs in %s", self.database_url, self.log_dir)
            return
        if self._db_created:
            await infra.drop_database(self.database_url)
        shutil.rmtree(self.workdir, ignore_errors=True)
