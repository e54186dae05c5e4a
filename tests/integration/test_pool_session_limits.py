"""Every pooled connection carries the server-side limits that free a frozen client's locks:
an idle transaction is ended, a runaway statement cancelled, a silent peer probed."""

import asyncio
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from shared.db import create_pool
from shared.service import connect_pool

SHOWN = {
    "application_name": "limits-test",
    "idle_in_transaction_session_timeout": "45s",
    "statement_timeout": "20s",
    "tcp_keepalives_idle": "25",
    "tcp_keepalives_interval": "7",
    "tcp_keepalives_count": "4",
}


def over_tcp(database_url: str) -> str:
    """The same server and database over TCP: on a Unix socket PostgreSQL ignores the
    keepalive settings (a peer on this machine that dies closes its socket at once)."""
    parts = urlsplit(database_url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{parts.hostname or '127.0.0.1'}:"
                                            f"{parts.port or 5432}", query=""))


@pytest.fixture
def limited(base_settings):
    return base_settings.model_copy(update={
        "database_url": over_tcp(base_settings.database_url),
        "db_application_name": "limits-test",
        "db_idle_in_transaction_timeout": 45, "db_statement_timeout": 20,
        "db_keepalives_idle": 25, "db_keepalives_interval": 7, "db_keepalives_count": 4})


async def show_all(pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        return {name: await conn.fetchval(f"SHOW {name}") for name in SHOWN}


@pytest.mark.parametrize("make", [create_pool, connect_pool])
async def test_pooled_connections_carry_the_session_limits(limited, make):
    pool = await make(limited)
    try:
        assert await show_all(pool) == SHOWN
    finally:
        await pool.close()


async def test_the_defaults_are_set_on_the_shared_pool(pool, base_settings):
    shown = await show_all(pool)
    assert shown["idle_in_transaction_session_timeout"] == "1min"
    assert shown["statement_timeout"] == "30s"
    assert shown["application_name"] == "a6pay"
    tcp = await create_pool(base_settings.model_copy(
        update={"database_url": over_tcp(base_settings.database_url)}))
    try:
        assert (await show_all(tcp))["tcp_keepalives_idle"] == "30"
    finally:
        await tcp.close()


async def test_an_abandoned_transaction_is_ended_by_the_server(base_settings):
    pool = await create_pool(base_settings.model_copy(
        update={"db_idle_in_transaction_timeout": 0.5, "db_pool_min": 1, "db_pool_max": 1}))
    try:
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1 FROM bookings LIMIT 1")
        # a client that froze here would hold its transaction forever without the limit
        await asyncio.sleep(1.5)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await conn.execute("SELECT 1")
        await pool.release(conn)
    finally:
        pool.terminate()
