"""Transactional outbox: events are written in the producer's own transaction, and a relay
publishes them to RabbitMQ afterwards. A crash anywhere loses nothing; at worst the relay
publishes an event twice (published, then killed before marking it), and every consumer's
inbox absorbs that.

Waking the relay: a producer that commits through `outbox_transaction` wakes the relays of
its own process at once; rows written anywhere else (another process, a crashed producer)
are found by each relay's sweep every `outbox_sweep_seconds`. No NOTIFY: PostgreSQL
serialises the commits of notifying transactions on one database-wide lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aio_pika
import asyncpg

from shared import metrics
from shared.db import transaction
from shared.events import Envelope, Event
from shared.messaging import BrokerNodes, BrokerWatch, declare_topology
from shared.settings import Settings

log = logging.getLogger(__name__)

# The body travels as JSON text both ways: pydantic writes it, the broker gets it as is.
INSERT_EVENT = "INSERT INTO outbox (id, routing_key, body) VALUES ($1, $2, $3::text::jsonb)"
CLAIM_UNSENT = (
    "SELECT id, routing_key, body::text AS body FROM outbox WHERE published_at IS NULL"
    " ORDER BY attempts, created_at LIMIT $1 FOR UPDATE SKIP LOCKED"
)
MARK_PUBLISHED = (
    "UPDATE outbox SET published_at = now(), attempts = attempts + 1"
    " WHERE id = ANY($1::uuid[])"
)
COUNT_ATTEMPT = "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::uuid[])"
# For /metrics, every few seconds: reads the partial index `outbox_claim_order` only, so its
# cost follows the backlog, not the table's history.
OUTBOX_LAG = (
    "SELECT count(*) AS unsent,"
    " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
    " FROM outbox WHERE published_at IS NULL"
)


class BrokerUnavailable(Exception):
    """Connecting or publishing failed because the broker is away (rows stay unsent)."""


async def add_event(
    conn: asyncpg.Connection, event: Event, producer: str, correlation_id: str | None = None
) -> Envelope:
    """Call inside the transaction that makes the state change the event reports."""
    envelope = Envelope.wrap(event, producer, correlation_id)
    await conn.execute(
        INSERT_EVENT,
        envelope.id,
        envelope.type,
        envelope.model_dump_json(),  # pydantic's encoder: no dict round trip through json
    )
    return envelope


async def add_events(
    conn: asyncpg.Connection, events: list[tuple[Event, str | None]], producer: str
) -> None:
    """`add_event` for several (event, correlation id) pairs, in one round trip."""
    envelopes = [Envelope.wrap(event, producer, correlation_id)
                 for event, correlation_id in events]
    await conn.executemany(INSERT_EVENT, [(e.id, e.type, e.model_dump_json())
                                          for e in envelopes])


# The relays running in this process: producers here wake them after their commit.
_local_relays: set[OutboxRelay] = set()


@contextlib.asynccontextmanager
async def outbox_transaction(
    pool: asyncpg.Pool, **acquire_kwargs
) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection in a transaction; once that transaction has committed, this
    process's relays are woken so the events it wrote leave now, not at the next sweep.
    A rollback (an exception) wakes nobody."""
    async with pool.acquire(**acquire_kwargs) as conn, transaction(conn):
        yield conn
    for relay in _local_relays:
        relay.wake()


class OutboxRelay:
    """Publishes unsent outbox rows with publisher confirms, then marks them sent.

    Several relays (one per producing service, or replicas) can run at once: each batch is
    claimed with FOR UPDATE SKIP LOCKED. Woken by producers in this process after their
    commit (`outbox_transaction`), and sweeps every `outbox_sweep_seconds` for the rest.
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings):
        self.pool = pool
        self.settings = settings
        self._wake = asyncio.Event()
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._broker = BrokerWatch("outbox relay")
        self._nodes = BrokerNodes(settings)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        _local_relays.add(self)
        gauges = asyncio.create_task(self._poll_lag())
        backoff, paused = 0.0, False
        try:
            while True:
                self._wake.clear()  # before publishing: a row committed meanwhile re-wakes us
                try:
                    while await self.publish_batch() == self.settings.outbox_batch_size:
                        pass
                    if paused:
                        log.warning("outbox relay resumed")
                    backoff, paused = 0.0, False
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker or database away: keep rows, retry later
                    # One line when it stops, one when it resumes: not one per retry.
                    if isinstance(exc, BrokerUnavailable):
                        self._broker.lost(exc.__cause__)
                        self._nodes.next()  # the node we had is the likeliest to be away
                    elif not paused:
                        paused = True
                        log.warning("outbox relay paused: %s", type(exc).__name__)
                    backoff = min(max(backoff * 2, 0.5), 10.0)
                    await self._reset_broker()
                    # While the broker is away, new rows must not wake us into a reconnect
                    # storm: wait out the back-off first.
                    await asyncio.sleep(backoff)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.outbox_sweep_seconds)
        finally:
            _local_relays.discard(self)
            gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauges
            await self._reset_broker()

    def broker_ready(self) -> bool:
        """For /readyz: the relay holds an open connection to the broker."""
        return self._connection is not None and self._connection.connected.is_set()

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows it published.

        A row the broker cannot route (no queue bound for it) stays unsent with its
        attempts counted, and the rows after it go on: one bad event must not hold up every
        other. Rows that failed before come last, so they never starve fresh ones.
        """
        exchange = await self._ensure_exchange()
        async with self.pool.acquire() as conn, transaction(conn):
            rows = await conn.fetch(CLAIM_UNSENT, self.settings.outbox_batch_size)
            # All at once, each awaiting its own confirm: one round trip per batch, not per row.
            results = await asyncio.gather(
                *(self._publish(exchange, row) for row in rows), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result  # broker away: the transaction rolls back, rows stay unsent
            published = [(row["id"], row["routing_key"])
                         for row, ok in zip(rows, results, strict=True) if ok]
            unroutable = [row["id"] for row, ok in zip(rows, results, strict=True) if not ok]
            await conn.execute(MARK_PUBLISHED, [event_id for event_id, _ in published])
            if unroutable:
                log.error("outbox: %d event(s) no queue is bound for; kept", len(unroutable))
                await conn.execute(COUNT_ATTEMPT, unroutable)
        # Counted once committed: a batch rolled back is published (and counted) again.
        for _, routing_key in published:
            metrics.EVENTS_PUBLISHED.labels(routing_key).inc()
        return len(published)

    @staticmethod
    async def _publish(exchange: aio_pika.abc.AbstractExchange, row: asyncpg.Record) -> bool:
        """True once the broker has confirmed it; False if no queue is bound for it."""
        message = aio_pika.Message(
            body=row["body"].encode(),
            message_id=str(row["id"]),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=row["routing_key"],
        )
        # Publisher confirms: publish() returns once the broker has it; on_return_raises
        # makes an unroutable message an error (kept in the outbox), not a drop.
        try:
            await exchange.publish(message, routing_key=row["routing_key"], timeout=10)
        except aio_pika.exceptions.DeliveryError:
            return False
        except Exception as exc:  # connection or channel gone, or no confirm in time
            raise BrokerUnavailable from exc
        return True

    async def _ensure_exchange(self) -> aio_pika.abc.AbstractExchange:
        if self._connection is not None and not self._connection.connected.is_set():
            # The broker went away while we were idle: reconnect now rather than fail on
            # the next publish, so /readyz turns ready again without traffic.
            raise BrokerUnavailable from ConnectionError("broker connection lost")
        if self._exchange is None:
            try:
                self._connection = await self._nodes.connect(timeout=5)
                # on_return_raises: an unroutable message fails publish() instead of being
                # confirmed and silently dropped, so its row stays unsent.
                channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                self._exchange = await declare_topology(channel, self.settings)
            except Exception as exc:
                raise BrokerUnavailable from exc
            self._broker.back()
        return self._exchange

    async def _reset_broker(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _poll_lag(self) -> None:
        """Outbox gauges for /metrics: how many rows wait and how old the oldest is."""
        while True:
            try:
                async with self.pool.acquire() as conn:
                    row = await conn.fetchrow(OUTBOX_LAG)
                metrics.OUTBOX_UNSENT.set(row["unsent"])
                metrics.OUTBOX_OLDEST_UNSENT.set(max(row["oldest"], 0.0))
            except asyncio.CancelledError:
                raise
            except Exception:  # database away: the relay's own warning says so
                pass
            await asyncio.sleep(self.settings.metrics_poll_seconds)
