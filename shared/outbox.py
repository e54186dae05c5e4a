"""Transactional outbox: events are written in the producer's own transaction, and a relay
publishes them to RabbitMQ afterwards. A crash anywhere loses nothing; at worst the relay
publishes an event twice (published, then killed before marking it), and every consumer's
inbox absorbs that."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aio_pika
import asyncpg

from shared.events import Envelope, Event
from shared.messaging import declare_topology
from shared.settings import Settings

log = logging.getLogger(__name__)

INSERT_EVENT = "INSERT INTO outbox (id, routing_key, body) VALUES ($1, $2, $3)"
CLAIM_UNSENT = (
    "SELECT id, routing_key, body FROM outbox WHERE published_at IS NULL"
    " ORDER BY attempts, created_at LIMIT $1 FOR UPDATE SKIP LOCKED"
)
MARK_PUBLISHED = (
    "UPDATE outbox SET published_at = now(), attempts = attempts + 1"
    " WHERE id = ANY($1::uuid[])"
)
COUNT_ATTEMPT = "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::uuid[])"


async def add_event(
    conn: asyncpg.Connection, event: Event, producer: str, correlation_id: str | None = None
) -> Envelope:
    """Call inside the transaction that makes the state change the event reports."""
    envelope = Envelope.wrap(event, producer, correlation_id)
    await conn.execute(
        INSERT_EVENT,
        envelope.id,
        envelope.type,
        envelope.model_dump(mode="json"),
    )
    return envelope


class OutboxRelay:
    """Publishes unsent outbox rows with publisher confirms, then marks them sent.

    Several relays (one per producing service, or replicas) can run at once: each batch is
    claimed with FOR UPDATE SKIP LOCKED. Wakes on NOTIFY a6pay_outbox and sweeps every
    `outbox_sweep_seconds` anyway, so a missed notification only delays, never loses.
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings):
        self.pool = pool
        self.settings = settings
        self._wake = asyncio.Event()
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        backoff = 0.0
        try:
            while True:
                self._wake.clear()  # before publishing: a row committed meanwhile re-wakes us
                try:
                    while await self.publish_batch() == self.settings.outbox_batch_size:
                        pass
                    backoff = 0.0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker or database away: keep rows, retry later
                    backoff = min(max(backoff * 2, 0.5), 10.0)
                    log.warning("outbox relay paused %.1fs: %s", backoff, type(exc).__name__)
                    await self._reset_broker()
                    # While the broker is away, new rows must not wake us into a reconnect
                    # storm: wait out the back-off first.
                    await asyncio.sleep(backoff)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.outbox_sweep_seconds)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._reset_broker()

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows it published.

        A row the broker cannot route (no queue bound for it) stays unsent with its
        attempts counted, and the rows after it go on: one bad event must not hold up every
        other. Rows that failed before come last, so they never starve fresh ones.
        """
        exchange = await self._ensure_exchange()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(CLAIM_UNSENT, self.settings.outbox_batch_size)
            published, unroutable = [], []
            for row in rows:
                message = aio_pika.Message(
                    body=json.dumps(row["body"]).encode(),
                    message_id=str(row["id"]),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    type=row["routing_key"],
                )
                # Publisher confirms: publish() returns once the broker has it; mandatory
                # makes an unroutable message an error (kept in the outbox), not a drop.
                try:
                    await exchange.publish(message, routing_key=row["routing_key"], timeout=10)
                except aio_pika.exceptions.DeliveryError:
                    unroutable.append(row["id"])
                    continue
                published.append(row["id"])
            await conn.execute(MARK_PUBLISHED, published)
            if unroutable:
                log.error("outbox: %d event(s) no queue is bound for; kept", len(unroutable))
                await conn.execute(COUNT_ATTEMPT, unroutable)
            return len(published)

    async def _ensure_exchange(self) -> aio_pika.abc.AbstractExchange:
        if self._exchange is None:
            self._connection = await aio_pika.connect(self.settings.amqp_url, timeout=5)
            # on_return_raises: an unroutable message fails publish() instead of being
            # confirmed and silently dropped, so its row stays unsent.
            channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._exchange = await declare_topology(channel, self.settings)
        return self._exchange

    async def _reset_broker(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection; reconnects if the database goes away."""
        while True:
            conn = None
            try:
                lost = asyncio.Event()
                conn = await asyncpg.connect(self.settings.database_url, timeout=5)
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener("a6pay_outbox", lambda *_: self._wake.set())
                self._wake.set()  # catch up on anything written while we were not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close()
