"""create-order holds no transaction or lock while Razorpay answers: a claim row settles
racing creates (one Razorpay order), a slow Razorpay for one booking leaves another's
create prompt, and a claim left by a crashed process is taken over after its lease."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

import aiohttp
import pytest

from order_service import handlers as orders
from shared.db import create_pool
from shared.http import HttpError
from shared.razorpay_client import RazorpayClient
from testkit.api_client import set_fault
from testkit.factories import make_booking
from testkit.infra import eventually
from testkit.inprocess import running_sandbox
from tests.support.orders import lost_answer

SLOW = 5.0  # seconds the sandbox sits on the slowed call


@pytest.fixture
async def sandbox(base_settings):
    # a Razorpay timeout well above SLOW: the slow call succeeds, just late
    async with running_sandbox(base_settings, razorpay_timeout_seconds=30) as settings:
        async with aiohttp.ClientSession() as http:
            yield SimpleNamespace(settings=settings, razorpay=RazorpayClient(settings),
                                  http=http, sandbox=settings.razorpay_base_url)


@pytest.fixture
async def create_pool_of_5(sandbox):
    """What the service gives create-order: its own small pool."""
    pool = await create_pool(sandbox.settings.model_copy(
        update={"db_pool_min": 5, "db_pool_max": 5}))
    yield pool
    await pool.close()


async def create(pool, razorpay, booking, **kwargs):
    return await orders.create_order(
        pool, razorpay, booking_id=booking["booking_id"], customer_id=booking["customer_id"],
        amount_paise=booking["amount_paise"], reconcile_after=timedelta(hours=1), **kwargs)


async def slow_next_order_call(sandbox) -> None:
    await set_fault(sandbox.http, sandbox, mode="slow", delay_seconds=SLOW,
                    path_prefix="/v1/orders", count=1)


async def claimed(pool, booking, *creating: asyncio.Task) -> bool:
    for task in creating:  # a create that failed early says why, instead of a timeout
        if task.done():
            task.result()
    return bool(await pool.fetchval("SELECT count(*) FROM order_claims WHERE booking_id = $1",
                                    booking["booking_id"]))


async def written(pool, booking) -> tuple[int, int, int]:
    """(payments rows, outbox events, claims) for the booking."""
    async with pool.acquire() as conn:
        return (
            await conn.fetchval("SELECT count(*) FROM payments WHERE booking_id = $1",
                                booking["booking_id"]),
            await conn.fetchval("SELECT count(*) FROM outbox WHERE routing_key = 'order.created'"
                                " AND (body->'data'->>'booking_id')::bigint = $1",
                                booking["booking_id"]),
            await conn.fetchval("SELECT count(*) FROM order_claims WHERE booking_id = $1",
                                booking["booking_id"]),
        )


async def orders_at_razorpay(razorpay, receipt: str) -> list[str]:
    listed = await razorpay._call("list_orders", razorpay._client.order.all, {"receipt": receipt})
    return [o["id"] for o in listed["items"] if o["receipt"] == receipt]


async def test_twenty_racing_creates_make_one_razorpay_order(pool, sandbox, create_pool_of_5):
    booking = await make_booking(pool)
    views = await asyncio.gather(*(
        create(create_pool_of_5, sandbox.razorpay, booking, wait_seconds=60)
        for _ in range(20)))
    assert len({v.order_id for v in views}) == 1
    receipt = await pool.fetchval("SELECT receipt FROM payments WHERE booking_id = $1",
                                  booking["booking_id"])
    assert await orders_at_razorpay(sandbox.razorpay, receipt) == [views[0].order_id]
    assert await written(pool, booking) == (1, 1, 0)


async def test_a_slow_razorpay_for_one_booking_delays_no_other(pool, sandbox, create_pool_of_5):
    a, b = await make_booking(pool), await make_booking(pool)
    await slow_next_order_call(sandbox)
    # Ten clicks on A: one waits on the slow Razorpay, nine wait for its order.
    a_creates = [asyncio.create_task(create(create_pool_of_5, sandbox.razorpay, a,
                                            wait_seconds=60)) for _ in range(10)]
    await eventually(lambda: claimed(pool, a, *a_creates), timeout=20)
    b_view = await create(create_pool_of_5, sandbox.razorpay, b)
    assert not any(t.done() for t in a_creates), "B waited for A's slow Razorpay call"
    a_views = await asyncio.wait_for(asyncio.gather(*a_creates), SLOW + 60)
    assert len({v.order_id for v in a_views}) == 1 and b_view.order_id != a_views[0].order_id
    assert await written(pool, a) == (1, 1, 0) and await written(pool, b) == (1, 1, 0)


async def test_no_transaction_is_open_while_razorpay_answers(pool, sandbox, create_pool_of_5):
    conns = [await create_pool_of_5.acquire() for _ in range(5)]
    pids = [c.get_server_pid() for c in conns]
    for conn in conns:
        await create_pool_of_5.release(conn)
    booking = await make_booking(pool)
    await slow_next_order_call(sandbox)
    creating = asyncio.create_task(create(create_pool_of_5, sandbox.razorpay, booking))
    await eventually(lambda: claimed(pool, booking, creating), timeout=20)
    samples = []
    for _ in range(8):  # over ~2 s of the 5 s Razorpay takes
        assert not creating.done()
        samples.append(await pool.fetchrow(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)"
            "        AND (xact_start IS NOT NULL OR state = 'idle in transaction')) AS open,"
            "       (SELECT count(*) FROM pg_locks WHERE pid = ANY($1)) AS locks", pids))
        await asyncio.sleep(0.25)
    assert [(s["open"], s["locks"]) for s in samples] == [(0, 0)] * 8
    assert (await creating).order_id.startswith("order_")
    assert await written(pool, booking) == (1, 1, 0)


async def test_a_claim_abandoned_by_a_crashed_process_is_taken_over(pool, sandbox):
    # The crashed process had claimed the booking and reached Razorpay; its answer is lost.
    booking, razorpay, made = await lost_answer(pool, sandbox.settings)
    await pool.execute(
        "INSERT INTO order_claims (booking_id, claim_id, lease_until)"
        " VALUES ($1, gen_random_uuid(), now() + interval '1 hour')", booking["booking_id"])
    with pytest.raises(HttpError) as busy:  # its lease still runs: a clear answer, retry
        await create(pool, razorpay, booking, wait_seconds=0.5)
    assert (busy.value.status, busy.value.message) == (503, orders.ORDER_IN_PROGRESS)
    assert busy.value.headers["Retry-After"]

    await pool.execute("UPDATE order_claims SET lease_until = now() - interval '1 second'"
                       " WHERE booking_id = $1", booking["booking_id"])
    order = await create(pool, razorpay, booking, wait_seconds=0.5)
    assert order.order_id == made["id"]  # unique_receipt: the order the dead process made
    assert await orders_at_razorpay(razorpay, made["receipt"]) == [made["id"]]
    assert await written(pool, booking) == (1, 1, 0)


async def test_a_failed_razorpay_call_leaves_no_claim_and_the_retry_works(pool, sandbox):
    booking = await make_booking(pool)
    await set_fault(sandbox.http, sandbox, mode="error_500", path_prefix="/v1/orders", count=5)
    with pytest.raises(HttpError) as failed:
        await create(pool, sandbox.razorpay, booking)
    assert failed.value.status == 503
    assert await written(pool, booking) == (0, 0, 0)
    await set_fault(sandbox.http, sandbox, mode="none")
    order = await create(pool, sandbox.razorpay, booking, wait_seconds=0)
    assert order.order_id.startswith("order_") and await written(pool, booking) == (1, 1, 0)


async def test_a_booking_cancelled_while_razorpay_answers_gets_no_order(pool, sandbox):
    booking = await make_booking(pool)
    await slow_next_order_call(sandbox)
    creating = asyncio.create_task(create(pool, sandbox.razorpay, booking))
    await eventually(lambda: claimed(pool, booking, creating), timeout=20)
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       booking["booking_id"])
    with pytest.raises(HttpError) as refused:
        await creating
    assert refused.value.status == 404
    assert await written(pool, booking) == (0, 0, 0)
