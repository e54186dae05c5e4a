"""The shared pool serves waiting tasks in the order they came. asyncpg's own pool lets a
task that asks just as a connection comes back take it ahead of those already waiting,
and under load a few requests starve for a second."""

import asyncio

import asyncpg
import pytest

from shared.db import FairPool, _release_as_is, create_pool


@pytest.fixture
async def pool_of_one(base_settings):
    pool = await create_pool(base_settings.model_copy(update={"db_pool_min": 1,
                                                              "db_pool_max": 1}))
    yield pool
    await pool.close()


async def test_no_task_is_served_ahead_of_one_that_asked_before_it(base_settings):
    pool = await create_pool(base_settings.model_copy(update={"db_pool_min": 2,
                                                              "db_pool_max": 2}))
    asked = 0
    waiting: set[int] = set()
    overtaken = []  # for each grant, how many who asked earlier were still waiting

    async def client():
        nonlocal asked
        for _ in range(40):
            asked += 1
            ticket = asked
            waiting.add(ticket)
            async with pool.acquire() as conn:
                waiting.discard(ticket)
                overtaken.append(sum(1 for t in waiting if t < ticket))
                await conn.fetchval("SELECT 1")

    try:
        await asyncio.gather(*(client() for _ in range(16)))
    finally:
        await pool.close()
    # asyncpg's own pool: up to 13 earlier askers overtaken at once, ~600 in all
    assert len(overtaken) == 640 and max(overtaken) <= 1, max(overtaken)


async def test_a_waiter_that_gives_up_leaves_its_turn(pool_of_one):
    held = await pool_of_one.acquire()
    with pytest.raises(TimeoutError):
        async with pool_of_one.acquire(timeout=0.2):
            pass
    cancelled = asyncio.create_task(pool_of_one.fetchval("SELECT 1"))
    await asyncio.sleep(0.1)
    cancelled.cancel()
    await pool_of_one.release(held)
    await pool_of_one.release(held)  # a second release changes nothing
    # One connection, so one turn: had a lost waiter kept it, or the double release added
    # one, the next two would not take turns.
    first = await pool_of_one.acquire(timeout=2)
    with pytest.raises(TimeoutError):
        await pool_of_one.acquire(timeout=0.2)
    await pool_of_one.release(first)
    assert await pool_of_one.fetchval("SELECT 2", timeout=2) == 2


async def test_a_timeout_bounds_the_turn_and_the_connection_together(base_settings):
    """A server that accepts and never answers: connecting hangs. The second asker waits
    for the first's turn and then connects; its timeout is the whole wait, not each half."""
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    pool = await create_pool(base_settings.model_copy(update={
        "database_url": f"postgresql://nobody@127.0.0.1:{port}/none",
        "db_pool_min": 0, "db_pool_max": 1}))
    try:
        async def take(timeout):
            return await pool.acquire(timeout=timeout)

        first = asyncio.create_task(take(None))  # takes the turn, hangs connecting
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        second = asyncio.create_task(take(1.0))
        await asyncio.sleep(0.8)
        first.cancel()  # the turn passes to the second asker, which now hangs connecting
        with pytest.raises(TimeoutError):
            await second
        # one deadline: ~1.0 s; a fresh timeout for the connection would make it ~1.8 s
        assert loop.time() - started < 1.5
    finally:
        pool.terminate()
        silent.close()


# --- release: at once when the connection is clean, asyncpg's own way otherwise ---------


async def _yields_to_the_loop(pool, conn) -> bool:
    """Whether releasing `conn` lets the event loop run something else first."""
    ran = asyncio.Event()
    asyncio.get_running_loop().call_soon(ran.set)
    await pool.release(conn)
    return ran.is_set()


async def test_a_clean_connection_goes_back_without_waiting(pool_of_one):
    conn = await pool_of_one.acquire()
    assert await conn.fetchval("SELECT 1") == 1
    # Nothing to roll back or reset: freed in place, no task, nothing a cancel can cut.
    # asyncpg's own release runs in a task of its own (asyncio.shield) and yields.
    assert not await _yields_to_the_loop(pool_of_one, conn)
    with pytest.raises(asyncpg.InterfaceError):  # the caller's handle is dead
        await conn.fetchval("SELECT 1")
    # the one connection and its one turn are free again, many times over
    for _ in range(50):
        async with pool_of_one.acquire(timeout=1) as again:
            assert await again.fetchval("SELECT 2") == 2


async def test_a_transaction_left_open_is_rolled_back_on_release(pool_of_one):
    conn = await pool_of_one.acquire()
    await conn.execute("BEGIN")
    await conn.execute("CREATE TEMP TABLE left_open (x int)")
    assert await _yields_to_the_loop(pool_of_one, conn)  # asyncpg's way: a ROLLBACK
    async with pool_of_one.acquire(timeout=1) as again:
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT to_regclass('pg_temp.left_open')") is None


async def test_a_listener_left_behind_is_dropped_on_release(pool_of_one):
    conn = await pool_of_one.acquire()
    await conn.add_listener("a6pay_left", lambda *args: None)
    with pytest.warns(Warning):  # asyncpg says a listener was left on a pooled connection
        assert await _yields_to_the_loop(pool_of_one, conn)
    async with pool_of_one.acquire(timeout=1) as again:
        assert not again._con._listeners


async def test_a_closed_connection_is_replaced(pool_of_one):
    conn = await pool_of_one.acquire()
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    conn.terminate()
    await pool_of_one.release(conn)
    async with pool_of_one.acquire(timeout=2) as again:
        assert await again.fetchval("SELECT pg_backend_pid()") != backend


async def test_a_connection_past_its_query_budget_is_replaced(base_settings):
    pool = await FairPool(base_settings.database_url, min_size=1, max_size=1, max_queries=3,
                          max_inactive_connection_lifetime=300.0, loop=None,
                          connection_class=asyncpg.Connection, record_class=asyncpg.Record,
                          reset=_release_as_is)
    try:
        backends = []
        for _ in range(7):
            async with pool.acquire(timeout=2) as conn:
                backends.append(await conn.fetchval("SELECT pg_backend_pid()"))
        assert len(set(backends)) >= 2, backends  # closed after its budget, a new one opened
    finally:
        await pool.close()


async def test_a_cancelled_releaser_still_returns_the_connection(pool_of_one):
    conn = await pool_of_one.acquire()

    async def release_then_cancelled():
        await pool_of_one.release(conn)
        await asyncio.sleep(10)

    task = asyncio.create_task(release_then_cancelled())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with pool_of_one.acquire(timeout=1) as again:
        assert await again.fetchval("SELECT 3") == 3


async def test_an_unchecked_asyncpg_gets_its_own_release(base_settings, monkeypatch):
    monkeypatch.setattr("shared.db._RELEASE_AT_ONCE", False)
    pool = await create_pool(base_settings.model_copy(update={"db_pool_min": 1,
                                                              "db_pool_max": 1}))
    try:
        conn = await pool.acquire()
        assert await _yields_to_the_loop(pool, conn)
        async with pool.acquire(timeout=1) as again:
            assert await again.fetchval("SELECT 4") == 4
    finally:
        await pool.close()
