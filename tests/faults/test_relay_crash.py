"""The outbox relay dies after the broker confirmed its messages but before it marked them
sent. A relay then publishes them again; the notifier's inbox absorbs the duplicates: the
broker delivered each event twice, the effects happened once, the inbox saw each once.

Deterministic: the real `OutboxRelay.publish_batch` runs against a connection whose
"mark sent" UPDATE raises, so its transaction rolls back exactly as a killed process's
would. The services' own relays are stopped meanwhile, so this one publishes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter

import aio_pika
import pytest

from shared.messaging import declare_exchange
from shared.outbox import OutboxRelay
from shared.payment_state import PaymentOutcome, PaymentStatus
from shared.payments import record_outcome
from testkit.infra import eventually
from tests.faults.helpers import (
    bookings_with_orders,
    inbox_rows_per_event,
    unsent,
    unsent_captured,
    wait_all_confirmed_once,
)

pytestmark = pytest.mark.e2e

RELAYS = ["order_service", "verification_service", "webhook_service"]
BOOKINGS = 5


class RelayKilled(Exception):
    """Stands for the process dying between publish and mark."""


class _DiesBeforeMarking:
    def __init__(self, conn):
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    async def execute(self, query: str, *args, **kwargs):
        if query.lstrip().startswith("UPDATE outbox SET published_at"):
            raise RelayKilled
        return await self._conn.execute(query, *args, **kwargs)


class _PoolDyingBeforeMark:
    def __init__(self, pool):
        self._pool = pool

    @contextlib.asynccontextmanager
    async def acquire(self):
        async with self._pool.acquire() as conn:
            yield _DiesBeforeMarking(conn)


class Tap:
    """A queue of our own bound to the exchange: counts what the broker routed, per id."""

    def __init__(self, settings):
        self.settings = settings
        self.seen: Counter[str] = Counter()

    async def __aenter__(self) -> Tap:
        self.connection = await aio_pika.connect(self.settings.amqp_url, timeout=10)
        channel = await self.connection.channel()
        exchange = await declare_exchange(channel, self.settings)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="payment.captured")
        await queue.consume(self._count, no_ack=True)
        return self

    async def _count(self, message) -> None:
        self.seen[json.loads(message.body)["id"]] += 1

    async def __aexit__(self, *_):
        await self.connection.close()


async def test_republished_events_are_absorbed_by_the_inbox(stack, settings, http, pool):
    made = await bookings_with_orders(http, stack, pool, BOOKINGS)
    ids = [booking["booking_id"] for booking, _ in made]
    await eventually(lambda: _none_unsent(pool), timeout=15)
    for name in RELAYS:
        await asyncio.to_thread(stack.stop, name)

    async with Tap(settings) as tap:
        # the captures land in the outbox, as the webhook service would write them
        async with pool.acquire() as conn, conn.transaction():
            for (booking, order_id) in made:
                outcome = PaymentOutcome(order_id, f"pay_Relay{booking['booking_id']:09d}",
                                         PaymentStatus.CAPTURED, booking["amount_paise"])
                assert (await record_outcome(conn, outcome, "webhook", None)).applied

        relay = OutboxRelay(_PoolDyingBeforeMark(pool), settings)
        try:
            with pytest.raises(RelayKilled):
                await relay.publish_batch()
        finally:
            await relay._reset_broker()
        # the broker has them (the notifier applies them), the outbox still says unsent
        await wait_all_confirmed_once(pool, ids, timeout=20)
        assert await unsent_captured(pool, ids) == BOOKINGS
        events = set(await inbox_rows_per_event(pool, ids))
        await eventually(lambda: _copies(tap, events, 1), timeout=10)

        for name in RELAYS:  # their relays publish the same rows again
            await asyncio.to_thread(stack.start, name)
        await eventually(lambda: _copies(tap, events, 2), timeout=20)
        await eventually(lambda: _none_unsent(pool), timeout=15)
        await eventually(lambda: _duplicates_acknowledged(stack, events), timeout=15)

    await wait_all_confirmed_once(pool, ids, timeout=5)
    assert set((await inbox_rows_per_event(pool, ids)).values()) == {1}
    async with pool.acquire() as conn:
        attempts = await conn.fetch(
            "SELECT attempts FROM outbox WHERE id = ANY($1::uuid[])", list(events))
    assert [r["attempts"] for r in attempts] == [1] * BOOKINGS  # the dead try never counted


async def _none_unsent(pool) -> bool:
    return await unsent(pool) == 0


async def _copies(tap: Tap, events: set[str], n: int) -> bool:
    return {event: tap.seen[event] for event in events} == {event: n for event in events}


async def _duplicates_acknowledged(stack, events: set[str]) -> bool:
    lines = [json.loads(line) for line in stack.logs().splitlines() if line.startswith("{")]
    acked = {entry.get("event_id") for entry in lines
             if entry.get("msg") == "duplicate event acknowledged"}
    return events <= acked
