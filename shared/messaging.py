"""RabbitMQ topology: one topic exchange keyed by event type, durable quorum queues with a
delivery limit and a dead-letter queue, so a poison message can't loop forever.

`AMQP_URL` names one node or, comma-separated, every node of a cluster: each connection
goes to the first node that answers (`BrokerNodes`), and when that node goes, to another.
aio-pika's robust connection reconnects to its one URL only, so the failover is ours: a
plain connection, watched for its loss, opened again over the list."""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue

from shared.outage import OutageWatch
from shared.settings import Settings, split_csv

# Who consumes what. Producers declare these queues too, so an event published before a
# consumer ever started is queued, not dropped.
CONSUMERS: dict[str, list[str]] = {
    "notifier": [
        "order.created", "payment.captured", "payment.failed",
        "booking.cancelled", "refund.created", "refund.processed", "refund.failed",
        "pass.scanned",
    ],
}


def dead_letter_exchange_name(settings: Settings) -> str:
    return f"{settings.amqp_exchange}.dlx"


def queue_name(settings: Settings, consumer: str) -> str:
    return f"{settings.amqp_exchange}.{consumer}"


def dead_letter_queue_name(settings: Settings, consumer: str) -> str:
    return f"{queue_name(settings, consumer)}.dlq"


def broker_urls(settings: Settings) -> list[str]:
    """AMQP_URL's nodes, in the order given."""
    return split_csv(settings.amqp_url)


def quorum_queue_arguments(settings: Settings) -> dict[str, object]:
    """A quorum queue with one replica on every node AMQP_URL names, so the loss of any one
    node (the queue's leader included) loses no confirmed message. One node named: the
    broker's own default, so a single-node deployment's queues stay as they were declared."""
    arguments: dict[str, object] = {"x-queue-type": "quorum"}
    nodes = len(broker_urls(settings))
    if nodes > 1:
        arguments["x-quorum-initial-group-size"] = nodes
    return arguments


class BrokerNodes:
    """Connects to the first of AMQP_URL's nodes that answers, starting from the one that
    answered last; `next()` after a loss moves the start on, so a node that is gone costs
    at most one refused (or timed-out) attempt."""

    def __init__(self, settings: Settings):
        self.urls = broker_urls(settings)
        self._start = 0

    @property
    def first(self) -> str:
        """The node the next connection tries first."""
        return self.urls[self._start]

    def next(self) -> None:
        self._start = (self._start + 1) % len(self.urls)

    async def connect(self, *, timeout: float = 5.0, **kwargs) -> AbstractConnection:
        error: BaseException | None = None
        for step in range(len(self.urls)):
            index = (self._start + step) % len(self.urls)
            # aio_pika.connect's own steps, keeping hold of the connection so a failed one
            # is closed here: left to the collector, its finaliser makes a coroutine that
            # nobody awaits when it runs outside the event loop's thread
            connection = aio_pika.Connection(self.urls[index], **kwargs)
            try:
                await connection.connect(timeout=timeout)
            except BaseException as exc:
                await connection.close()
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                    raise
                error = exc  # this node is away or refusing: try the next
                continue
            self._start = index
            return connection
        assert error is not None
        raise error


async def until_closed(connection: AbstractConnection,
                       channel: AbstractChannel) -> BaseException | None:
    """Waits until the connection or its channel closes under us; returns why (None: no
    reason given)."""
    lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def closed(_sender, error: BaseException | None = None) -> None:
        if not lost.done():
            lost.set_result(error)

    connection.close_callbacks.add(closed)
    channel.close_callbacks.add(closed)
    if not connection.connected.is_set() or channel.is_closed:
        closed(None)  # it closed before we started watching
    return await lost


async def declare_exchange(channel: AbstractChannel, settings: Settings) -> AbstractExchange:
    return await channel.declare_exchange(
        settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_consumer_queue(
    channel: AbstractChannel, settings: Settings, consumer: str, routing_keys: list[str]
) -> AbstractQueue:
    """The consumer's quorum queue bound to its event types, plus its dead-letter queue."""
    exchange = await declare_exchange(channel, settings)
    dlx = await channel.declare_exchange(
        dead_letter_exchange_name(settings), aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq = await channel.declare_queue(
        dead_letter_queue_name(settings, consumer),
        durable=True,
        arguments=quorum_queue_arguments(settings),
    )
    await dlq.bind(dlx, routing_key=consumer)
    queue = await channel.declare_queue(
        queue_name(settings, consumer),
        durable=True,
        arguments={
            **quorum_queue_arguments(settings),
            # RabbitMQ 3.10 quorum queues redeliver forever unless told otherwise.
            "x-delivery-limit": settings.notifier_delivery_limit,
            "x-dead-letter-exchange": dead_letter_exchange_name(settings),
            "x-dead-letter-routing-key": consumer,
        },
    )
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue


async def declare_topology(channel: AbstractChannel, settings: Settings) -> AbstractExchange:
    """The exchange and every consumer's queue; idempotent."""
    for consumer, keys in CONSUMERS.items():
        await declare_consumer_queue(channel, settings, consumer, keys)
    return await declare_exchange(channel, settings)


class BrokerWatch(OutageWatch):
    """Says once that the broker went away and once that it is back: an outage is two
    warning lines per process, not one per reconnect attempt. (aio-pika's and aiormq's own
    lines about it are kept at DEBUG: see shared.logging.)"""

    def __init__(self, component: str):
        super().__init__("broker", component)
