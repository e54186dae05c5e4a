"""Fault tests run the real processes against a PRIVATE PostgreSQL and RabbitMQ (see
testkit/local_services.py), because they stop and start them: the machine's shared servers,
which other test runs and CI use at the same time, are never touched.

One private database server, one private broker and one stack for the whole run. Before
each test every server and process is brought back up if a previous test left it down, and
the sandbox's fault rule is cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from shared.db import create_database_if_missing, create_pool, migrate
from shared.settings import Settings, load_settings
from testkit.local_services import PrivatePostgres, PrivateRabbitMQ
from testkit.stack import SERVICES, Stack

DATABASE = "a6pay_faults"
DELIVERY_LIMIT = 3

# Razorpay keeps retrying a webhook we answered 5xx; here quickly and for long enough to
# outlast any outage a test makes. Razorpay calls time out after 1 s, so "slow" is cheap.
EXTRA_ENV = {
    "SANDBOX_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "SANDBOX_WEBHOOK_MAX_DELAY_SECONDS": "1",
    "SANDBOX_WEBHOOK_MAX_ATTEMPTS": "300",
    "RAZORPAY_TIMEOUT_SECONDS": "1",
    "NOTIFIER_DELIVERY_LIMIT": str(DELIVERY_LIMIT),
    "OUTBOX_SWEEP_SECONDS": "0.5",
    # a mail claimed by a notifier that was killed is claimed again after this, which must
    # outlast one mail's longest send (8 commands and the data, each timed out)
    "MAIL_LEASE_SECONDS": "20",
    "SMTP_TIMEOUT_SECONDS": "1",
    "SMTP_DATA_TIMEOUT_SECONDS": "2",
    "LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="session")
def fault_dir():
    path = Path(tempfile.mkdtemp(prefix="a6pay-faults-"))
    path.chmod(0o755)  # the servers run as their own OS users and keep their data in here
    yield path
    if not os.environ.get("A6PAY_KEEP_FAULT_LOGS"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbit(fault_dir):
    broker = PrivateRabbitMQ(fault_dir)
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()


@pytest.fixture(scope="session")
def postgres(fault_dir):
    server = PrivatePostgres(fault_dir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
async def database_url(postgres):
    url = postgres.url(DATABASE)
    await create_database_if_missing(url)
    await migrate(url)
    return url


@pytest.fixture(scope="session")
def amqp_url(rabbit):
    return rabbit.url


@pytest.fixture(scope="session")
def settings(database_url, amqp_url) -> Settings:
    """What the stack's processes run with, for in-process helpers (relay, CLI calls)."""
    env = {name.lower(): value for name, value in EXTRA_ENV.items()}
    return load_settings(**env, database_url=database_url, amqp_url=amqp_url, db_pool_max=4)


@pytest.fixture(scope="session")
def stack(database_url, amqp_url, fault_dir):
    logs = fault_dir / "logs"
    logs.mkdir()
    running = Stack(database_url, amqp_url, logs, EXTRA_ENV)
    try:
        running.start_all()
        yield running
    finally:
        for name in list(running.procs):
            with contextlib.suppress(Exception):
                running.stop(name)


@pytest.fixture(autouse=True)
async def everything_up(stack, rabbit, postgres, http):
    """A test may leave a server stopped or a process killed (when it fails half-way)."""
    await asyncio.to_thread(rabbit.start)
    await asyncio.to_thread(postgres.start)
    for name in SERVICES:
        proc = stack.procs.get(name)
        if proc is None or proc.poll() is not None:
            stack.procs.pop(name, None)
            await asyncio.to_thread(stack.start, name)
    await _clear_faults(http, stack)
    yield
    await _clear_faults(http, stack)


async def _clear_faults(http, stack) -> None:
    with contextlib.suppress(aiohttp.ClientError):
        async with http.post(f"{stack.sandbox}/sandbox/faults", json={"mode": "none"}):
            pass


@pytest.fixture
async def new_pool(settings):
    """Makes pools that are closed after the test: after a PostgreSQL restart a test takes a
    fresh one rather than trusting connections the outage cut."""
    opened: list[asyncpg.Pool] = []

    async def make() -> asyncpg.Pool:
        created = await create_pool(settings)
        opened.append(created)
        return created

    yield make
    for each in opened:
        try:
            await asyncio.wait_for(each.close(), 10)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            each.terminate()


@pytest.fixture
async def pool(new_pool):
    return await new_pool()


@pytest.fixture(scope="session")
async def http():
    async with aiohttp.ClientSession() as session:
        yield session
