"""A write is acknowledged only once the synchronous standby has it, and nothing of ours
cuts that wait short: neither the pool's command timeout, nor the server's
statement_timeout, nor a task cancelled meanwhile (a request's deadline, shutdown). Cut
short, PostgreSQL would keep the commit on the primary alone and show it to everyone, and
a failover would then lose a row others had acted on.

A PostgreSQL of the test's own, whose synchronous standby is absent: every commit waits.
Letting it stop waiting (`synchronous_standby_names` emptied) stands for the standby
coming back."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from order_service.idempotency import run_once
from shared.db import create_database_if_missing, create_pool, migrate
from shared.events import PaymentFailed
from shared.outbox import add_event, outbox_transaction
from shared.settings import load_settings
from testkit.ha_cluster import PostgresNode
from testkit.local_services import PrivatePostgres, _private_dir

DATABASE = "a6pay_commit_wait"
TIMEOUT = 0.5  # the pool's command timeout and statement_timeout, both far shorter than
WAIT = 2.0     # how long the test lets a commit wait before looking


@pytest.fixture(scope="module")
def primary():
    root = _private_dir(Path("/tmp"), "a6pgsync-", PostgresNode.USER)
    node = PostgresNode(root, "pg_alone", PrivatePostgres._find_bin())
    try:
        node.initdb()
        node.start()
        yield node
    finally:
        if node.running:
            node.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def own_url(primary):
    url = f"postgresql://postgres@127.0.0.1:{primary.port}/{DATABASE}"
    await create_database_if_missing(url)
    await migrate(url)
    return url


@pytest.fixture
async def pool(primary, own_url):
    pool = await create_pool(load_settings(
        database_url=own_url, db_command_timeout=TIMEOUT, db_statement_timeout=TIMEOUT,
        db_pool_min=1, db_pool_max=2))
    yield pool
    _standby_back(primary)  # whatever still waits commits, so the pool can close
    await asyncio.wait_for(pool.close(), 30)


@pytest.fixture
async def observer(own_url):
    conn = await asyncpg.connect(own_url)
    await conn.execute("SET synchronous_commit = local")  # its own writes never wait
    yield conn
    await conn.close()


def _standby_gone(node: PostgresNode) -> None:
    node.sql("ALTER SYSTEM SET synchronous_standby_names = 'absent_standby'")
    node.sql("SELECT pg_reload_conf()")


def _standby_back(node: PostgresNode) -> None:
    node.sql("ALTER SYSTEM RESET synchronous_standby_names")
    node.sql("SELECT pg_reload_conf()")


async def _waiting_for_standby(observer) -> int:
    return await observer.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")


async def _until(check, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.1)


async def test_a_commit_waits_for_the_standby_past_every_timeout_and_a_cancelled_task(
        primary, pool, observer):
    event = PaymentFailed(booking_id=1, customer_id=1, order_id="order_w", source="test")
    written, writer_pid = [], []

    async def write():
        async with outbox_transaction(pool) as conn:
            writer_pid.append(conn.get_server_pid())
            written.append((await add_event(conn, event, "test")).id)

    _standby_gone(primary)
    writer = asyncio.create_task(write())
    await asyncio.sleep(WAIT)
    unseen = "SELECT count(*) FROM outbox WHERE id = $1"
    assert not writer.done(), writer  # no timeout of ours or the server's ended the wait
    [event_id] = written
    assert await observer.fetchval(unseen, event_id) == 0
    assert await _waiting_for_standby(observer) == 1

    writer.cancel()  # its request's deadline passes
    with pytest.raises(asyncio.CancelledError):
        await writer
    await asyncio.sleep(WAIT)
    assert await observer.fetchval(unseen, event_id) == 0  # still uncommitted to others
    assert await _waiting_for_standby(observer) == 1       # and still waiting
    # its connection is not back in the pool meanwhile: one of the two is left
    async with pool.acquire(timeout=5):
        with pytest.raises(TimeoutError):
            await pool.acquire(timeout=0.5)

    _standby_back(primary)
    await _until(lambda: _row_seen(observer, event_id))
    # its connection went back to the pool, alive, once the commit was done
    async with pool.acquire(timeout=5) as a, pool.acquire(timeout=5) as b:
        assert writer_pid[0] in {a.get_server_pid(), b.get_server_pid()}


async def _row_seen(observer, event_id) -> bool:
    return await observer.fetchval("SELECT count(*) FROM outbox WHERE id = $1", event_id) == 1


async def test_an_autocommit_write_cancelled_while_it_waits_stays_unseen(
        primary, pool, observer):
    key = uuid.uuid4().hex

    async def work():
        return {"done": True}

    _standby_gone(primary)
    claim = asyncio.create_task(run_once(pool, "/v1/test", key, "digest", work))
    await _until(lambda: _waiting(observer))
    claim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claim
    await asyncio.sleep(WAIT)
    seen = "SELECT count(*) FROM idempotent_requests WHERE key = $1"
    assert await observer.fetchval(seen, key) == 0
    assert await _waiting_for_standby(observer) == 1
    # a retry waits on the waiting claim's row (its lock still held) until its own
    # statement_timeout refuses it: never answered from an unreplicated claim
    with pytest.raises(asyncpg.QueryCanceledError):
        await run_once(pool, "/v1/test", key, "digest", work)

    _standby_back(primary)
    await _until(lambda: _claim_seen(observer, key))


async def _waiting(observer) -> bool:
    return await _waiting_for_standby(observer) == 1


async def _claim_seen(observer, key: str) -> bool:
    return await observer.fetchval(
        "SELECT count(*) FROM idempotent_requests WHERE key = $1", key) == 1
