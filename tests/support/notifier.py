"""The notifier served in-process and a publisher to its exchange: the real broker path
for tests that publish events as anyone with access to the exchange could."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import aio_pika
from aiohttp import web

from notifier import handlers
from notifier.app import CONSUMER, create_app
from shared.events import Envelope, Event, PaymentCaptured
from shared.messaging import declare_exchange
from testkit.infra import eventually, free_port


class Notifier:
    """The notifier app served in-process, with a log of how each message was settled."""

    def __init__(self, settings):
        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings)
        self.runner = web.AppRunner(self.app)
        self.outcomes: list[tuple[str, str | None]] = []

    async def start(self) -> Notifier:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        consumer = self.app[CONSUMER]
        consumer.handler.listeners.append(lambda *outcome: self.outcomes.append(outcome))
        await asyncio.wait_for(consumer.ready.wait(), 20)
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()

    def count(self, event_id, outcome: str) -> int:
        return Counter(self.outcomes)[(outcome, str(event_id))]

    async def settled(self, event_id, outcome: str = "applied", times: int = 1, timeout=15):
        async def done():
            return self.count(event_id, outcome) >= times

        await eventually(done, timeout=timeout)


class Bus:
    def __init__(self, settings):
        self.settings = settings

    async def __aenter__(self) -> Bus:
        self.connection = await aio_pika.connect(self.settings.amqp_url, timeout=10)
        channel = await self.connection.channel(publisher_confirms=True)
        self.exchange = await declare_exchange(channel, self.settings)
        return self

    async def __aexit__(self, *_):
        await self.connection.close()

    async def publish(
        self,
        envelope: Envelope | None = None,
        *,
        body: bytes | None = None,
        routing_key: str | None = None,
        message_id: str | None = None,
    ) -> None:
        message = aio_pika.Message(
            body=body if body is not None else envelope.model_dump_json().encode(),
            message_id=message_id or str(envelope.id),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=envelope.type if envelope else None,
        )
        await self.exchange.publish(
            message, routing_key=routing_key or envelope.type, mandatory=True
        )


async def apply_event(conn, event: Event, event_id, *, pass_secret: str,
                      mail_after: timedelta = timedelta(0)) -> bool:
    """What the notifier does with one event, on `conn`: a capture through the confirmation
    statement as a batch of one (notifier/consumer.py: confirm_batches), the rest through
    the handlers. True when fresh, False when applied before."""
    if isinstance(event, PaymentCaptured):
        [row] = await handlers.confirm_bookings(conn, [(event, event_id)],
                                                pass_secret=pass_secret, mail_after=mail_after)
        return handlers.captured_outcome(row, event, event_id)
    return await handlers.apply_event(conn, event, event_id, pass_secret=pass_secret)
