"""asyncpg pool and schema migrations."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable
from importlib import resources
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.outage import database_watch
from shared.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

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


class FairPool:
    """asyncpg's pool behind a queue of our own, so waiters are served in the order they came.

    asyncpg gives a returned connection to whichever task asks next: a task that has just
    released one and asks again takes it back before the waiter woken for it, and that
    waiter goes to the back of the queue (MagicStack/asyncpg#1247). With more requests at
    once than connections, a few of them would starve for a second while most answer at
    once. Here a task first takes a turn (asyncio.Semaphore queues its waiters in order),
    one turn per connection, so asyncpg always has a connection free for a turn's holder.
    Only asyncpg's public pool API is used; the methods are the ones of asyncpg.Pool that
    our code calls."""

    def __init__(self, pool: asyncpg.Pool, size: int) -> None:
        self.pool = pool
        self._turns = asyncio.Semaphore(size)
        self._lent: set[asyncpg.Connection] = set()  # out on a turn: one turn back each

    def acquire(self, *, timeout: float | None = None) -> Lease:
        """`async with pool.acquire() as conn`, or `conn = await pool.acquire()` and later
        `await pool.release(conn)`. A timeout bounds the turn and the connection together."""
        return Lease(self, timeout)

    async def take(self, timeout: float | None) -> asyncpg.Connection:
        async with asyncio.timeout(timeout):
            await self._turns.acquire()
            try:
                connection = await self.pool.acquire()
            except BaseException:
                self._turns.release()
                raise
        self._lent.add(connection)
        return connection

    async def release(self, connection: asyncpg.Connection, *,
                      timeout: float | None = None) -> None:
        commit = _committing.get(connection)
        if commit is not None and not commit.done():
            # Its holder was cancelled while its commit goes on: the connection is busy
            # until the server answers, so it goes back then, with its turn.
            commit.add_done_callback(functools.partial(self._release_later, connection))
            return
        try:
            await self.pool.release(connection, timeout=timeout)
        finally:
            if connection in self._lent:  # a second release of one connection: no turn
                self._lent.discard(connection)
                self._turns.release()

    def _release_later(self, connection: asyncpg.Connection, _commit: asyncio.Task) -> None:
        _in_background(self.release(connection))

    async def execute(self, query: str, *args, timeout: float | None = None) -> str:
        async with self.acquire() as conn:
            return await conn.execute(query, *args, timeout=timeout)

    async def executemany(self, command: str, args, *, timeout: float | None = None) -> None:
        async with self.acquire() as conn:
            await conn.executemany(command, args, timeout=timeout)

    async def fetch(self, query: str, *args, timeout: float | None = None) -> list:
        async with self.acquire() as conn:
            return await conn.fetch(query, *args, timeout=timeout)

    async def fetchrow(self, query: str, *args, timeout: float | None = None):
        async with self.acquire() as conn:
            return await conn.fetchrow(query, *args, timeout=timeout)

    async def fetchval(self, query: str, *args, column: int = 0,
                       timeout: float | None = None):
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args, column=column, timeout=timeout)

    async def close(self) -> None:
        await self.pool.close()

    def terminate(self) -> None:
        self.pool.terminate()


class Lease:
    """One turn and one connection of a FairPool, awaited or used as a context manager."""

    __slots__ = ("fair_pool", "timeout", "connection")

    def __init__(self, fair_pool: FairPool, timeout: float | None) -> None:
        self.fair_pool = fair_pool
        self.timeout = timeout
        self.connection: asyncpg.Connection | None = None

    def __await__(self):
        return self.fair_pool.take(self.timeout).__await__()

    async def __aenter__(self) -> asyncpg.Connection:
        self.connection = await self.fair_pool.take(self.timeout)
        return self.connection

    async def __aexit__(self, exc_type, exc, traceback) -> None:
        if isinstance(exc, asyncpg.InternalClientError):
            # asyncpg lost track of the connection's protocol state (a session the server
            # ended mid-statement, MagicStack/asyncpg#1069): never lend it again
            self.connection.terminate()
        await self.fair_pool.release(self.connection)


# What asyncpg is told to wait for a statement that commits: no limit. Its timeout, like a
# cancelled task, makes it send a cancel request, and a cancel that reaches a COMMIT waiting
# for the synchronous standby ends the wait but keeps the commit, visible at once on the
# primary alone: others would act on a row a failover then loses. (statement_timeout never
# reaches that wait: PostgreSQL stops its clock before it commits.)
_NO_LIMIT = math.inf

# The commit each connection is waiting for, while it waits.
_committing: dict[asyncpg.Connection, asyncio.Task] = {}
_background: set[asyncio.Task] = set()


def _in_background(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(_logged(work))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _logged(work: Awaitable[None]) -> None:
    try:
        await work
    except Exception:  # noqa: BLE001 - a connection the pool cannot take back is its to drop
        log.warning("a connection could not go back to the pool after its commit",
                    exc_info=True)


async def _to_the_end(conn: asyncpg.Connection, statement: Awaitable[T]) -> T:
    """Runs a statement that commits until the server answers it. Its own task, shielded:
    a caller that is cancelled (its deadline, a client gone, shutdown) stops waiting, but
    no cancel reaches the server, so a commit waiting for the standby stays uncommitted to
    everyone else, holding its locks (a retry of the same write waits on them), until the
    standby has it. The connection then goes back to the pool (FairPool.release)."""
    task = asyncio.ensure_future(statement)
    _committing[conn] = task
    task.add_done_callback(functools.partial(_forget, conn))
    return await asyncio.shield(task)


def _forget(conn: asyncpg.Connection, task: asyncio.Task) -> None:
    if _committing.get(conn) is task:
        del _committing[conn]


@contextlib.asynccontextmanager
async def transaction(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """`async with transaction(conn):` for every transaction that writes, in place of
    asyncpg's `conn.transaction()`, whose COMMIT has the pool's command timeout and is
    cancelled with its task. BEGIN and COMMIT as asyncpg sends them (no round trip more);
    the COMMIT runs to its end (`_to_the_end`). A savepoint inside is `savepoint(conn)`."""
    if conn.is_in_transaction():
        raise RuntimeError("transaction() inside a transaction: use savepoint()")
    await conn.execute("BEGIN")
    try:
        yield conn
    except BaseException:
        if not conn.is_closed():  # a closed one has nothing to roll back, and says why
            await conn.execute("ROLLBACK")
        raise
    await _to_the_end(conn, conn.execute("COMMIT", timeout=_NO_LIMIT))


@contextlib.asynccontextmanager
async def savepoint(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A savepoint in the caller's transaction: what fails inside it is undone alone, and
    the caller's transaction goes on."""
    await conn.execute("SAVEPOINT inner_block")
    try:
        yield conn
    except BaseException:
        await conn.execute("ROLLBACK TO SAVEPOINT inner_block")
        raise
    await conn.execute("RELEASE SAVEPOINT inner_block")


class Autocommit:
    """A write outside any transaction, which PostgreSQL commits at the end of its
    statement: `await Autocommit(conn).fetchval(...)`. The statement, its commit included,
    runs to its end (`_to_the_end`): it has the server's statement_timeout but no limit of
    ours, as the end of the statement cannot be told from its commit."""

    __slots__ = ("conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def execute(self, query: str, *args) -> str:
        return await _to_the_end(self.conn, self.conn.execute(query, *args, timeout=_NO_LIMIT))

    async def fetch(self, query: str, *args) -> list:
        return await _to_the_end(self.conn, self.conn.fetch(query, *args, timeout=_NO_LIMIT))

    async def fetchrow(self, query: str, *args):
        return await _to_the_end(self.conn, self.conn.fetchrow(query, *args, timeout=_NO_LIMIT))

    async def fetchval(self, query: str, *args):
        return await _to_the_end(self.conn, self.conn.fetchval(query, *args, timeout=_NO_LIMIT))


async def create_pool(settings: Settings) -> FairPool:
    """Pooled connections carry no session state: SET, LISTEN or session-level advisory
    locks belong on a connection of their own (transaction-level ones are fine)."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        command_timeout=settings.db_command_timeout,
        statement_cache_size=settings.db_statement_cache_size,
        server_settings=session_settings(settings),
        init=_init_connection,
        reset=_release_as_is,
        # opens every connection: one warning when none can be opened, one when it can again
        connect=database_watch(settings.db_application_name).connect,
    )
    return FairPool(pool, settings.db_pool_max)


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
            async with transaction(conn):
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
