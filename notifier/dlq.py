"""Ops on the notifier's dead-letter queue: look at what died and why, then replay it.

`list_dead_letters` peeks (basic_get, then nack with requeue: nothing is lost).
`replay_dead_letters` re-publishes each message to the main exchange under its original
routing key with publisher confirms, and acks it from the DLQ only once the broker has
confirmed the copy, so a crash mid-replay duplicates at worst (the inbox absorbs that).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from shared.events import EVENT_TYPES
from shared.logging import scrub
from shared.messaging import BrokerNodes, dead_letter_queue_name, declare_exchange
from shared.settings import Settings

log = logging.getLogger(__name__)

CONSUMER = "notifier"
BODY_PREVIEW_CHARS = 200
_DROPPED_HEADERS = {"x-delivery-count"}  # the main queue counts afresh


async def list_dead_letters(settings: Settings, limit: int = 50) -> list[dict]:
    """Up to `limit` dead letters, oldest first, left in the DLQ."""
    held: list[AbstractIncomingMessage] = []
    async with _dlq(settings) as (_, dlq):
        if dlq is None:
            return []
        try:
            while len(held) < limit:
                message = await dlq.get(no_ack=False, fail=False, timeout=10)
                if message is None:
                    break
                held.append(message)
            return [describe(m) for m in held]
        finally:
            for message in held:  # all at the end, or basic_get would hand them back again
                await message.nack(requeue=True)


async def replay_dead_letters(settings: Settings, limit: int | None = None) -> int:
    """Move dead letters back to the main exchange; returns how many were moved.

    Looks at no more messages than the DLQ held when it started, so one that dies again at
    once is not replayed in a loop.
    """
    moved = 0
    async with _dlq(settings, publisher_confirms=True) as (channel, dlq):
        if dlq is None:
            return 0
        exchange = await declare_exchange(channel, settings)
        budget = dlq.declaration_result.message_count or 0
        if limit is not None:
            budget = min(budget, limit)
        for _ in range(budget):
            message = await dlq.get(no_ack=False, fail=False, timeout=10)
            if message is None:
                break
            routing_key = original_routing_key(message)
            if routing_key is None:
                log.warning("dead letter without a routing key left in the DLQ")
                await message.nack(requeue=True)
                continue
            try:
                # publisher confirms + mandatory: returns once the broker has routed it
                await exchange.publish(
                    _copy(message), routing_key=routing_key, mandatory=True, timeout=10
                )
            except BaseException:
                await message.nack(requeue=True)
                raise
            await message.ack()
            moved += 1
    log.info("dead letters replayed", extra={"ctx": {"count": moved}})
    return moved


async def dead_letter_depth(connection: aio_pika.abc.AbstractConnection, settings: Settings) -> int:
    """How many messages wait in the DLQ (0 if it does not exist yet). A channel of its own:
    a passive declare of a missing queue closes the channel it runs on."""
    async with connection.channel() as channel:
        try:
            dlq = await channel.declare_queue(
                dead_letter_queue_name(settings, CONSUMER), passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return 0
        return dlq.declaration_result.message_count or 0


def describe(message: AbstractIncomingMessage) -> dict[str, Any]:
    """What an operator needs to decide: id, type, why and how often it died, a preview."""
    death = _last_death(message)
    body = message.body.decode("utf-8", errors="replace")
    return {
        "message_id": message.message_id,
        "type": message.type,
        "routing_key": original_routing_key(message),
        "reason": _text(death.get("reason")),
        "death_count": death.get("count"),
        "queue": _text(death.get("queue")),
        "died_at": str(death["time"]) if death.get("time") is not None else None,
        # scrub the whole body first, so no id is cut in half and left readable
        "body": scrub(body)[:BODY_PREVIEW_CHARS],
    }


def original_routing_key(message: AbstractIncomingMessage) -> str | None:
    """The key it was first published with (x-death), else its event type."""
    keys = _last_death(message).get("routing-keys") or []
    if keys:
        return _text(keys[0])
    if message.type in EVENT_TYPES:
        return message.type
    return None


@contextlib.asynccontextmanager
async def _dlq(
    settings: Settings, publisher_confirms: bool = False
) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue | None]]:
    """The DLQ, or None when no notifier ever declared it (nothing has died yet)."""
    connection = await BrokerNodes(settings).connect(timeout=10)
    async with connection:
        channel = await connection.channel(
            publisher_confirms=publisher_confirms, on_return_raises=publisher_confirms
        )
        # passive: we inspect the DLQ the consumer declared, never create one of our own
        try:
            dlq = await channel.get_queue(dead_letter_queue_name(settings, CONSUMER), ensure=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            yield channel, None
            return
        yield channel, dlq


def _copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _DROPPED_HEADERS}
    headers["x-a6pay-replays"] = int(headers.get("x-a6pay-replays") or 0) + 1
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


def _last_death(message: AbstractIncomingMessage) -> dict:
    deaths = (message.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]  # RabbitMQ keeps the most recent first
    return {}


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
