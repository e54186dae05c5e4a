"""The shared pool serves waiting tasks in the order they came. asyncpg's own pool lets a
task that asks just as a connection comes back take it ahead of those already waiting,
and under load a few requests starve for a second."""

import asyncio

import asyncpg
import pytest

from shared.db import create_pool


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


# --- release: asyncpg's own, with the turn handed on after it ---------------------------


async def test_a_transaction_left_open_is_rolled_back_on_release(pool_of_one):
    conn = await pool_of_one.acquire()
    await conn.execute("BEGIN")
    await conn.execute("CREATE TEMP TABLE left_open (x int)")
    await pool_of_one.release(conn)
    async with pool_of_one.acquire(timeout=1) as again:
        assert not again.is_in_transaction()
        assert await again.fetchval("SELECT to_regclass('pg_temp.left_open')") is None


async def test_a_closed_connection_is_replaced(pool_of_one):
    conn = await pool_of_one.acquire()
    backend = await conn.fetchval("SELECT pg_backend_pid()")
    conn.terminate()
    await pool_of_one.release(conn)
    async with pool_of_one.acquire(timeout=2) as again:
        assert await again.fetchval("SELECT pg_backend_pid()") != backend


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


async def test_the_pool_runs_queries_itself_in_turn(pool_of_one):
    """fetch/fetchrow/fetchval/execute/executemany each take a turn like acquire does."""
    held = await pool_of_one.acquire()
    waiting = asyncio.create_task(pool_of_one.fetchval("SELECT 5"))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # the one turn is out
    await pool_of_one.release(held)
    assert await waiting == 5
    await pool_of_one.execute("CREATE TEMP TABLE t (x int)")  # one connection: the same one
    await pool_of_one.executemany("INSERT INTO t VALUES ($1)", [(1,), (2,)])
    assert [dict(r) for r in await pool_of_one.fetch("SELECT x FROM t ORDER BY x")] == [
        {"x": 1}, {"x": 2}]
    assert (await pool_of_one.fetchrow("SELECT 2 AS two"))["two"] == 2


async def test_a_connection_asyncpg_lost_track_of_is_never_lent_again(pool_of_one):
    """asyncpg can raise InternalClientError on a connection whose session the server ended
    mid-statement; the pool terminates it and lends a fresh one."""
    with pytest.raises(asyncpg.InternalClientError):
        async with pool_of_one.acquire() as conn:
            first = await conn.fetchval("SELECT pg_backend_pid()")
            raise asyncpg.InternalClientError("cannot switch to state 12")
    async with pool_of_one.acquire() as again:  # the pool's one connection: a new session
        assert await again.fetchval("SELECT pg_backend_pid()") != first
