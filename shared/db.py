"""asyncpg pool and schema migrations."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.outage import database_watch
from shared.settings import Settings

_MIGRATION_LOCK = 7_411_001  # pg_advisory_lock key: one migrator at a time


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def session_settings(settings: Settings) -> dict[str, str]:
    """Server-side limits for every session we open. A client that froze or vanished with a
    transaction open would otherwise hold its locks (a booking, a claimed outbox batch) until
    the kernel gives up on the socket, about two hours: the server ends an idle transaction,
    a runaway statement, and probes a silent peer within a minute or so."""
    return {
        "application_name": settings.db_application_name,
        "idle_in_transaction_session_timeout": _ms(settings.db_idle_in_transaction_timeout),
        "statement_timeout": _ms(settings.db_statement_timeout),
        "tcp_keepalives_idle": str(settings.db_keepalives_idle),
        "tcp_keepalives_interval": str(settings.db_keepalives_interval),
        "tcp_keepalives_count": str(settings.db_keepalives_count),
    }


def _ms(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


async def _release_as_is(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's default reset on release (pg_advisory_unlock_all, CLOSE ALL,
    UNLISTEN *, RESET ALL): one more round trip for every request, undoing session state
    our pooled connections never hold. asyncpg still rolls back a transaction left open."""


class FairPool(asyncpg.Pool):
    """An asyncpg pool that serves its waiters in the order they came.

    asyncpg gives a returned connection to whichever task asks next: a task that has just
    released one and asks again takes it back before the waiter woken for it, and that
    waiter goes to the back of the queue (MagicStack/asyncpg#1247). With more requests at
    once than connections, a few of them starve: payment-status straight to order_service
    at 64 connections answered most requests in 2 ms and one in a hundred after 0.5-1 s.
    Here a task first takes a turn (asyncio.Semaphore queues its waiters in order), one
    turn per connection, and then finds a connection free."""

    def __init__(self, *args, max_size: int, **kwargs) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self._turns = asyncio.Semaphore(max_size)
        self._lent: set[object] = set()  # connections out on a turn: one turn back each
        # Whether a clean connection can go back in place (see _released_at_once): decided
        # once, it holds for the pool's life.
        self._release_at_once = _RELEASE_AT_ONCE and self._reset is _release_as_is

    async def _acquire(self, timeout: float | None):
        if timeout is None:  # payment-status and most callers: no deadline to keep
            return await self._take_turn_and_connection()
        # One deadline for the turn and the connection: a caller's timeout is the whole wait.
        async with asyncio.timeout(timeout):
            return await self._take_turn_and_connection()

    async def _take_turn_and_connection(self):
        await self._turns.acquire()
        try:
            connection = await super()._acquire(None)
        except BaseException:
            self._turns.release()
            raise
        self._lent.add(connection)
        return connection

    async def release(self, connection, *, timeout: float | None = None) -> None:
        try:
            if not self._released_at_once(connection):
                await super().release(connection, timeout=timeout)
        finally:
            if connection in self._lent:  # a second release of one connection: no turn
                self._lent.discard(connection)
                self._turns.release()

    def _released_at_once(self, connection) -> bool:
        """Give a clean connection back without waiting for anything, when there is nothing
        to wait for. asyncpg's release always runs in a task of its own (asyncio.shield,
        so a cancelled caller still returns the connection) under a timeout, to roll back
        or reset: ~15-25 us of a pooled query's ~45 us. With our no-op reset, a connection
        that is open, outside any transaction, not cancelling a query, under its query
        budget, of the pool's generation and with no listener needs only what asyncpg does
        last: free the holder (back on the pool's queue) and re-arm its idle timer. That
        never awaits, so no cancellation can cut it short. Anything else, or an asyncpg
        whose internals we have not checked, takes asyncpg's own way."""
        if not self._release_at_once:
            return False
        holder = getattr(connection, "_holder", None)
        con = getattr(connection, "_con", None)
        if holder is None or con is None or holder._pool is not self or holder._con is not con:
            return False
        protocol = con._protocol
        if (con.is_closed() or protocol.is_in_transaction() or con._top_xact is not None
                or protocol._is_cancelling() or protocol.queries_count >= holder._max_queries
                or holder._generation != self._generation
                or con._listeners or con._log_listeners):
            return False
        con._on_release()
        holder._timeout = None
        holder._release()
        holder._setup_inactive_callback()
        return True


# The asyncpg releases whose pool internals _released_at_once was checked against (the lock
# pins one); any other takes asyncpg's own release until someone checks it.
_RELEASE_AT_ONCE = asyncpg.__version__ in {"0.32.0"}


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """Pooled connections carry no session state: SET, LISTEN or session-level advisory
    locks belong on a connection of their own (transaction-level ones are fine)."""
    pool = FairPool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        max_queries=50_000,  # asyncpg's defaults, as create_pool would pass them
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=settings.db_command_timeout,
        statement_cache_size=settings.db_statement_cache_size,
        server_settings=session_settings(settings),
        init=_init_connection,
        reset=_release_as_is,
        # opens every connection: one warning when none can be opened, one when it can again
        connect=database_watch(settings.db_application_name).connect,
    )
    return await pool


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("shared") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name, f.read_text()) for f in files]


async def migrate(database_url: str) -> list[str]:
    """Apply every migration not applied yet; returns the names applied now."""
    conn = await asyncpg.connect(database_url)
    applied_now = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in _migrations():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
    finally:
        await conn.close()
    return applied_now


def with_database(database_url: str, name: str) -> str:
    """The same server(s) and options, another database. Works on a multi-host URL
    (`postgresql://u@h1:p1,h2:p2/db?target_session_attrs=read-write`): only the path
    changes, and a URL's port is never parsed here (urlsplit cannot read several)."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path="/" + name))


def database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


async def create_database_if_missing(database_url: str) -> bool:
    """Connects to the server's `postgres` database and creates ours if it is absent."""
    name = database_name(database_url)
    conn = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
        return not exists
    finally:
        await conn.close()


async def drop_database(database_url: str) -> None:
    name = database_name(database_url)
    conn = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
