"""The run's world: a PostgreSQL primary with its synchronous standby and a three-node
RabbitMQ cluster of its own, migrated through `a6pay migrate` with the multi-host URL, the
stack of real processes on both clusters' URL lists, and a tap recording what the gateway
answered each webhook delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg

from bench.chaos.env import WebhookTap, stop_at_once
from bench.chaos.record import Recorder
from shared.db import create_pool
from shared.messaging import queue_name
from shared.settings import load_settings
from testkit.ha_cluster import PostgresPair, RabbitCluster
from testkit.stack import Stack

log = logging.getLogger("bench.chaos_ha")

DATABASE = "a6pay_ha"
STACK_ENV = {
    # Razorpay retries a webhook we answered 5xx: quickly here, for longer than any outage
    "SANDBOX_WEBHOOK_MAX_ATTEMPTS": "60",
    "SANDBOX_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "SANDBOX_WEBHOOK_MAX_DELAY_SECONDS": "2",
    "OUTBOX_SWEEP_SECONDS": "0.5",
    "MAIL_POLL_SECONDS": "0.5",
    "LOG_LEVEL": "INFO",
    "DB_POOL_MAX": "6",
}


class HaWorld:
    def __init__(self, recorder: Recorder, keep: bool = False):
        self.recorder = recorder
        self.keep = keep
        self.workdir = Path(tempfile.mkdtemp(prefix="a6pay-ha-"))
        self.workdir.chmod(0o755)  # the servers run as their own OS users
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir()
        self.postgres = PostgresPair(self.workdir)
        self.rabbit = RabbitCluster(self.workdir)
        self.tap = WebhookTap(recorder)
        self.stack: Stack | None = None
        self.pool: asyncpg.Pool | None = None

    @property
    def database_url(self) -> str:
        return self.postgres.url(DATABASE)

    @property
    def notifier_queue(self) -> str:
        return queue_name(load_settings(), "notifier")

    async def start(self) -> None:
        with ThreadPoolExecutor(2) as boot:  # both clusters at once
            started = [boot.submit(self.postgres.start), boot.submit(self.rabbit.start)]
            await asyncio.gather(*(asyncio.wrap_future(f) for f in started))
        await asyncio.to_thread(self.migrate)
        await self.tap.start()
        self.stack = Stack(self.database_url, self.rabbit.url, self.log_dir,
                           {**STACK_ENV, "SANDBOX_WEBHOOK_URL": self.tap.url})
        self.tap.target = f"{self.stack.gateway}/api/razorpay/webhook"
        await asyncio.to_thread(self.stack.start_all)
        self.pool = await create_pool(load_settings(database_url=self.database_url,
                                                    db_pool_max=4))

    def migrate(self) -> None:
        """The operator's own command, given the multi-host URL."""
        env = {**os.environ, "DATABASE_URL": self.database_url}
        done = subprocess.run([sys.executable, "-m", "ops.cli", "migrate"], env=env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"a6pay migrate failed: {done.stderr[-2000:]}")

    def logs(self) -> str:
        return self.stack.logs() if self.stack is not None else ""

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()  # its server may be the one a fault left dead
        if self.stack is not None:
            await asyncio.to_thread(stop_at_once, self.stack)
        await self.tap.close()
        for cluster in (self.rabbit, self.postgres):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(cluster.destroy)
        if self.keep:
            log.warning("kept: service logs in %s", self.log_dir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
