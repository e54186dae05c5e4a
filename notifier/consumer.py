"""The notifier's RabbitMQ consumer: parse → handle → ack/reject.

Failure policy, per message:
- cannot be parsed (not JSON, not an Envelope, unknown type, invalid data): poison, so
  `reject(requeue=False)` sends it straight to the dead-letter queue;
- an event the database does not stand behind (a `payment.captured` with no captured
  payment, a `booking.cancelled` for a booking not cancelled, a `refund.*` for another
  booking's refund or one not in that state...: forged, or corrupt): refused at once with
  an ALARM log line, `reject(requeue=False)` to the DLQ;
- the database is unreachable, or answers that it cannot do the work for now (out of
  disk, memory or connections, an I/O error, read-only, a serialization failure or a
  deadlock: shared/http.py's DB_ERRORS): a transient failure that must not burn the
  delivery limit, so the message stays unacked and handling is retried in-process with
  backoff (0.5 s doubling to 5 s) until the database does the work;
- anything else the handler raises: `reject(requeue=True)`; RabbitMQ counts deliveries and
  dead-letters the message after `x-delivery-limit` (a reject, not a nack: from RabbitMQ
  4.3 a nack means "not processed" and no longer counts towards the limit).
Ack happens only after the handler's transaction has committed. An ack lost with a broken
channel is harmless: the broker redelivers and the inbox absorbs the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from notifier.backing import UnbackedEvent
from notifier.handlers import (
    Capture,
    apply_event,
    captured_outcome,
    confirm_bookings,
)
from shared import metrics
from shared.coalesce import Coalescer, group_commit
from shared.events import Envelope, Event, PaymentCaptured
from shared.http import DB_ERRORS
from shared.logging import log_ctx
from shared.messaging import (
    CONSUMERS,
    BrokerNodes,
    BrokerWatch,
    declare_consumer_queue,
    until_closed,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

NAME = "notifier"
QUIET = 0.05  # seconds without a message before mail counts the consumer idle


Apply = Callable[[Event, uuid.UUID], Awaitable[bool]]


def parse(body: bytes) -> tuple[Envelope, Event] | None:
    """The envelope and its typed event, or None for anything we cannot read."""
    try:
        envelope = Envelope.model_validate_json(body)
        return envelope, envelope.event()
    except (ValidationError, KeyError, ValueError, TypeError, RecursionError):
        return None


class ChannelGone(Exception):
    """The channel that delivered the message closed: the broker will redeliver it."""


class MessageHandler:
    """The broker-independent part of the consumer: takes any object with aio-pika's
    IncomingMessage surface (`body`, `headers`, `ack`, `nack`, `reject`, `channel`)."""

    def __init__(
        self,
        apply: Apply,
        *,
        retry_initial: float = 0.5,
        retry_max: float = 5.0,
        requeue_delay: float = 0.5,
    ):
        self.apply = apply
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.requeue_delay = requeue_delay  # a short pause so a failing message can't spin
        self.inflight: set[asyncio.Task] = set()
        self.idle = asyncio.Event()  # set while no message is in hand
        self.idle.set()
        self.last_started = 0.0  # loop time the latest message came in
        # Called with (outcome, event id or None) once a message is settled: a seam for tests
        # and metrics. Outcomes: applied, duplicate, requeued, dead-lettered, refused, abandoned.
        self.listeners: list[Callable[[str, str | None], None]] = []

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        self.last_started = asyncio.get_running_loop().time()
        if task is not None:
            self.inflight.add(task)
            self.idle.clear()
        try:
            await self.process(message)
        finally:
            self.inflight.discard(task)
            if not self.inflight:
                self.idle.set()

    async def until_idle(self, at_most: float, quiet: float = QUIET) -> None:
        """Returns once no message has been in hand for `quiet` seconds (the messages of a
        burst come a few milliseconds apart: a gap between two is not the burst's end), or
        after `at_most` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet(quiet), at_most)

    async def _quiet(self, quiet: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.idle.wait()
            calm_until = self.last_started + quiet
            if loop.time() >= calm_until and self.idle.is_set():
                return
            await asyncio.sleep(max(calm_until - loop.time(), 0.001))

    async def process(self, message: AbstractIncomingMessage) -> None:
        parsed = parse(message.body)
        if parsed is None:
            log.error("unreadable message dead-lettered", extra=_message_ctx(message))
            await _settle(message.reject(requeue=False), "reject")
            self._settled("dead-lettered", None, "unreadable")
            return
        envelope, event = parsed
        ctx = {"event_id": str(envelope.id), "event_type": envelope.type}
        try:
            applied = await self._apply_until_database_answers(message, event, envelope.id)
        except ChannelGone:
            log.warning("channel closed while the database was away", extra=log_ctx(**ctx))
            self._settled("abandoned", ctx["event_id"], envelope.type)
            return
        except asyncio.CancelledError:
            raise
        except UnbackedEvent as exc:
            # Someone who can publish to our exchange claimed a fact the database does not
            # hold (a capture nobody paid, a cancellation nobody made, another booking's
            # refund), or an event was corrupted: never retried, kept in the DLQ to inspect.
            log.error("ALARM: %s not backed by the database; refused and dead-lettered",
                      envelope.type, extra=log_ctx(**ctx, alarm=exc.alarm))
            await _settle(message.reject(requeue=False), "reject")
            self._settled("refused", ctx["event_id"], envelope.type)
            return
        except Exception as exc:
            log.error(
                "handler failed; requeued",
                extra=log_ctx(
                    **ctx, error=type(exc).__name__, delivery_count=_delivery_count(message)
                ),
            )
            await asyncio.sleep(self.requeue_delay)
            await _settle(message.reject(requeue=True), "reject")
            self._settled("requeued", ctx["event_id"], envelope.type)
            return
        if not applied:
            log.info("duplicate event acknowledged", extra=log_ctx(**ctx))
        await _settle(message.ack(), "ack")
        self._settled("applied" if applied else "duplicate", ctx["event_id"], envelope.type)

    def _settled(self, outcome: str, event_id: str | None, event_type: str) -> None:
        metrics.EVENTS_CONSUMED.labels(NAME, event_type, outcome).inc()
        for listener in self.listeners:
            listener(outcome, event_id)

    async def _apply_until_database_answers(self, message, event: Event, event_id) -> bool:
        delay, attempt = self.retry_initial, 0
        while True:
            try:
                return await self.apply(event, event_id)
            except DB_ERRORS as exc:  # the database away or busy, not the event bad
                attempt += 1
                if not _channel_open(message):
                    raise ChannelGone from exc
                log.warning(
                    "database unavailable; retrying",
                    extra=log_ctx(
                        event_id=str(event_id),
                        error=type(exc).__name__,
                        attempt=attempt,
                        retry_in=delay,
                    ),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)

    async def drain(self, grace_seconds: float) -> None:
        """Let in-flight messages finish (then cancel them: unacked means redelivered),
        those the broker sent just before it stopped sending included: a delivery reaches
        the handler a few steps of the event loop after it is read, so the drain ends only
        once nothing has been in hand for QUIET seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while True:
            await asyncio.sleep(QUIET)
            if not self.inflight:
                return
            _, pending = await asyncio.wait(set(self.inflight),
                                            timeout=max(deadline - loop.time(), 0))
            if pending:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                return


Confirms = Coalescer[Capture, asyncpg.Record]


def confirm_batches(pool: asyncpg.Pool, settings: Settings) -> Confirms:
    """payment.captured events in hand together (up to NOTIFIER_PREFETCH, each in its own
    task) confirm in one statement; each is acknowledged with the outcome its row says."""
    mail_after = timedelta(seconds=settings.mail_passes_wait_seconds)

    async def confirm(captures: list[Capture]) -> list[asyncpg.Record]:
        async with pool.acquire() as conn:
            return await confirm_bookings(conn, captures, pass_secret=settings.pass_signing_secret,
                                          mail_after=mail_after)

    return group_commit(confirm)


def pool_apply(pool: asyncpg.Pool, settings: Settings, confirms: Confirms) -> Apply:
    """The real adapter: one pooled connection, one transaction per event; payment.captured
    events through `confirms`."""

    async def apply(event: Event, event_id: uuid.UUID) -> bool:
        if isinstance(event, PaymentCaptured):
            return captured_outcome(await confirms.get((event, event_id)), event, event_id)
        async with pool.acquire() as conn:
            return await apply_event(
                conn, event, event_id, pass_secret=settings.pass_signing_secret
            )

    return apply


class NotifierConsumer:
    """Owns the connection: connects to the first broker node that answers (waiting for
    one if none is up yet), declares the quorum queue with its DLX, consumes until the
    connection is lost, then does it all again on another node. Unacked deliveries of the
    lost connection are redelivered by the broker and absorbed by the inbox."""

    def __init__(self, settings: Settings, handler: MessageHandler):
        self.settings = settings
        self.handler = handler
        self.ready = asyncio.Event()  # set once consuming; tests wait on it
        self.connection: AbstractConnection | None = None
        self.broker = BrokerWatch("notifier consumer")
        self.nodes = BrokerNodes(settings)

    async def run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the queue exists with other arguments
                log.error("consumer stopped (%s); restarting", type(exc).__name__)
                await asyncio.sleep(5)

    def broker_ready(self) -> bool:
        """For /readyz: connected to the broker (a robust connection clears this while it
        reconnects) and consuming."""
        connection = self.connection
        return (self.ready.is_set() and connection is not None
                and connection.connected.is_set() and not connection.is_closed)

    async def _consume(self) -> None:
        queue, consumer_tag = None, None
        try:
            self.connection = await self._connect()
            channel = await self.connection.channel()
            await channel.set_qos(prefetch_count=self.settings.notifier_prefetch)
            queue = await declare_consumer_queue(channel, self.settings, NAME, CONSUMERS[NAME])
            consumer_tag = await queue.consume(self.handler)
            self.ready.set()
            log.info("consuming", extra=log_ctx(queue=queue.name))
            self.broker.lost(await until_closed(self.connection, channel))
            self.nodes.next()
        finally:
            self.ready.clear()
            if consumer_tag is not None:
                # RabbitMQ counts a message returned by a closing channel as a delivery:
                # no new one may arrive while those in hand finish, to be returned at close.
                await _stop_consuming(queue, consumer_tag)
            await self.handler.drain(grace_seconds=5)
            connection, self.connection = self.connection, None
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()

    async def _connect(self) -> AbstractConnection:
        delay = 0.5
        while True:
            try:
                connection = await self.nodes.connect(
                    timeout=5,
                    client_properties={
                        "connection_name": f"{NAME}@{socket.gethostname()}:{os.getpid()}"
                    },
                )
            except Exception as exc:  # no node answered; CancelledError is not caught
                self.broker.lost(exc)  # once; not once per attempt
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
            else:
                self.broker.back()
                return connection


async def _stop_consuming(queue, consumer_tag, timeout: float = 2.0) -> None:
    """Cancels the consumer, when its channel is still open to hear it; once the broker
    has answered, it sends no more."""
    with contextlib.suppress(Exception):  # the channel is gone: nothing more comes anyway
        await queue.cancel(consumer_tag, timeout=timeout)


async def _settle(action: Awaitable[Any], what: str) -> None:
    try:
        await action
    except Exception as exc:  # channel closed under us: the broker redelivers, inbox dedupes
        log.warning("%s not delivered to the broker (%s)", what, type(exc).__name__)


def _channel_open(message) -> bool:
    try:
        return not message.channel.is_closed
    except Exception:
        return False


def _delivery_count(message) -> int | None:
    value = (message.headers or {}).get("x-delivery-count")
    return value if isinstance(value, int) else None


def _message_ctx(message) -> dict:
    # Never the body (it carries payment ids); the message id only if it is one of ours.
    try:
        message_id = str(uuid.UUID(str(message.message_id)))
    except ValueError:
        message_id = None
    return log_ctx(
        message_id=message_id,
        delivery_count=_delivery_count(message),
        size=len(message.body or b""),
    )
