"""The shared pool serves waiting tasks in the order they came. asyncpg's own pool lets a
task that asks just as a connection comes back take it ahead of those already waiting,
and under load a few requests starve for a second."""

import asyncio

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
