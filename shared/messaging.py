"""RabbitMQ topology: one topic exchange keyed by event type, durable quorum queues with a
delivery limit and a dead-letter queue, so a poison message can't loop forever."""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.logging import log_ctx
from shared.settings import Settings

log = logging.getLogger(__name__)

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


async def connect(settings: Settings) -> aio_pika.abc.AbstractRobustConnection:
    return await aio_pika.connect_robust(settings.amqp_url, timeout=10)


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
        arguments={"x-queue-type": "quorum"},
    )
    await dlq.bind(dlx, routing_key=consumer)
    queue = await channel.declare_queue(
        queue_name(settings, consumer),
        durable=True,
        arguments={
            "x-queue-type": "quorum",
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


class BrokerWatch:
    """Says once that the broker went away and once that it is back: an outage is two
    warning lines per process, not one per reconnect attempt. (aio-pika's and aiormq's own
    lines about it are kept at DEBUG: see shared.logging.)"""

    def __init__(self, component: str):
        self.component = component
        self.down = False

    def lost(self, error: BaseException | None = None) -> None:
        if not self.down:
            self.down = True
            log.warning("broker unavailable", extra=log_ctx(
                component=self.component, error=type(error).__name__ if error else None))

    def back(self) -> None:
        if self.down:
            self.down = False
            log.warning("broker back", extra=log_ctx(component=self.component))

    def follow(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        """Hook a robust connection's close and reconnect callbacks (not our own close)."""

        def closed(sender, error=None) -> None:
            if not getattr(sender, "close_called", False):
                self.lost(error)

        connection.close_callbacks.add(closed)
        connection.reconnect_callbacks.add(lambda _sender: self.back())
