"""Isolation for a test run: its own PostgreSQL database and its own RabbitMQ vhost."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from shared.db import (
    create_database_if_missing,
    create_pool,
    database_name,
    migrate,
    with_database,
)
from shared.settings import Settings, local_postgres_url

# The machine's PostgreSQL; A6PAY_TEST_POSTGRES_URL points a run at another server (one of
# its own when the shared one is out of connections).
BASE_DATABASE_URL = os.environ.get("A6PAY_TEST_POSTGRES_URL") or local_postgres_url("postgres")
BASE_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def unique_name(prefix: str = "a6pay_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(BASE_DATABASE_URL)._replace(path="/" + name))


def amqp_url(vhost: str) -> str:
    return BASE_AMQP_URL.rstrip("/") + "/" + quote(vhost, safe="")


def _rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost(vhost: str) -> None:
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def delete_vhost(vhost: str) -> None:
    _rabbitmqctl("delete_vhost", vhost)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.1):
    """Poll an async predicate until it returns truthy; returns that value or fails."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)


async def drop_database(database_url: str) -> None:
    """Drops the database even while connections to it are open: a run's clean-up must not
    wait for a process it has stopped to let go."""
    name = database_name(database_url)
    conn = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def own_database(base: Settings, **overrides) -> AsyncIterator[tuple[Settings, object]]:
    """A migrated database of its own, for tests whose rows other tests' relays or
    background jobs must not see (or whose clean-up jobs must not touch theirs)."""
    url = database_url(unique_name("a6pay_own"))
    await create_database_if_missing(url)
    await migrate(url)
    settings = base.model_copy(update={"database_url": url, **overrides})
    pool = await create_pool(settings)
    try:
        yield settings, pool
    finally:
        await pool.close()
        await drop_database(url)
