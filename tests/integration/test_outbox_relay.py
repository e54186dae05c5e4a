"""The outbox relay against the real broker, on a database of its own (other tests' relays
must not publish these rows)."""

import asyncio

import aio_pika
import pytest

from shared.events import OrderCreated
from shared.messaging import queue_name
from shared.outbox import OutboxRelay, add_event, outbox_transaction
from testkit import infra
from testkit.infra import eventually
from tests.support.tasks import running


@pytest.fixture
async def relay_env(base_settings):
    exchange = infra.unique_name("a6pay.relaytest")
    async with infra.own_database(base_settings, amqp_exchange=exchange) as env:
        yield env


async def add_order_created(pool, n=1):
    async with pool.acquire() as conn, conn.transaction():
        for i in range(n):
            await add_event(conn, OrderCreated(booking_id=i + 1, customer_id=1,
                                               order_id=f"order_R{i:013d}", amount_paise=100),
                            "test")


async def unsent(pool):
    return await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")


async def test_relay_publishes_with_confirms_and_marks_sent(relay_env):
    settings, pool = relay_env
    relay = OutboxRelay(pool, settings)
    await relay.publish_batch()  # connects and declares the topology (queues included)
    await add_order_created(pool, 3)
    assert await relay.publish_batch() == 3
    assert await unsent(pool) == 0
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name(settings, "notifier"), passive=True)
        assert queue.declaration_result.message_count == 3
        await queue.delete(if_unused=False, if_empty=False)
        await channel.exchange_delete(settings.amqp_exchange)
    await relay._reset_broker()


async def test_an_unroutable_event_stays_in_the_outbox_and_holds_up_nothing(relay_env):
    settings, pool = relay_env
    relay = OutboxRelay(pool, settings)
    await relay.publish_batch()
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:  # an operator deletes the consumer's queue
        channel = await connection.channel()
        await channel.queue_delete(queue_name(settings, "notifier"))
    await add_order_created(pool)
    assert await relay.publish_batch() == 0
    assert await unsent(pool) == 1  # kept, not marked sent, its attempt counted
    assert await pool.fetchval("SELECT attempts FROM outbox") == 1
    await relay._reset_broker()
    assert await relay.publish_batch() == 1  # reconnecting re-declares the queue
    assert await unsent(pool) == 0
    await relay._reset_broker()


async def test_an_event_nobody_consumes_does_not_block_the_others(relay_env):
    settings, pool = relay_env
    async with pool.acquire() as conn:  # a type no consumer binds, written first
        await conn.execute("INSERT INTO outbox (id, routing_key, body)"
                           " VALUES (gen_random_uuid(), 'nobody.listens', '{}')")
    await add_order_created(pool, 2)
    relay = OutboxRelay(pool, settings)
    assert await relay.publish_batch() == 2
    assert await pool.fetchval(
        "SELECT routing_key FROM outbox WHERE published_at IS NULL") == "nobody.listens"
    await relay._reset_broker()




async def test_producer_transactions_send_no_notify(relay_env):
    _, pool = relay_env
    # a NOTIFY at commit would serialise every producer on one database-wide lock
    assert await pool.fetchval(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'outbox'::regclass"
        " AND NOT tgisinternal") == 0


async def test_an_event_committed_in_this_process_leaves_without_waiting_for_the_sweep(
    relay_env,
):
    settings, pool = relay_env
    relay = OutboxRelay(pool, settings.model_copy(update={"outbox_sweep_seconds": 3600}))
    async with running(relay.run()):
        for booking_id in (1, 2):  # the second finds the relay idle, waiting on its wake
            async with outbox_transaction(pool) as conn:
                await add_event(conn, OrderCreated(booking_id=booking_id, customer_id=1,
                                                   order_id="order_RWake00000001",
                                                   amount_paise=100), "test")
            # an hour-long sweep: only the in-process wake-up can publish it in time
            await eventually(lambda: _all_sent(pool), timeout=20)


async def test_an_event_another_process_wrote_is_published_by_the_sweep(relay_env):
    settings, pool = relay_env
    relay = OutboxRelay(pool, settings.model_copy(update={"outbox_sweep_seconds": 0.5}))
    async with running(relay.run()):
        await eventually(lambda: _connected(relay), timeout=20)
        psql = await asyncio.create_subprocess_exec(
            "psql", settings.database_url, "-qc",
            "INSERT INTO outbox (id, routing_key, body) VALUES (gen_random_uuid(),"
            " 'order.created', '{\"type\": \"order.created\"}')",
        )
        assert await psql.wait() == 0
        await eventually(lambda: _all_sent(pool), timeout=20)


async def _connected(relay) -> bool:
    return relay._exchange is not None


async def _all_sent(pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox") > 0 and await unsent(pool) == 0
