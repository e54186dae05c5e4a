"""RabbitMQ topology: one topic exchange keyed by event type, durable quorum queues with a
delivery limit and a dead-letter queue, so a poison message can't loop forever."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.settings import Settings

# Who consumes what. Producers declare these queues too, so an event published before a
# consumer ever started is queued, not dropped.
CONSUMERS: dict[str, list[str]] = {
    "notifier": [
        "order.created", "payment.captured", "payment.failed",
        "booking.cancelled", "refund.created", "refund.processed", "refund.failed",
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
