"""notifier: /healthz, the pool, the event consumer and the mail sender for the app's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from notifier.consumer import MessageHandler, NotifierConsumer, confirm_batches, pool_apply
from notifier.dlq import dead_letter_depth
from notifier.mail_sender import MailSender
from shared import metrics, readiness
from shared.service import POOL, SETTINGS, background, new_app
from shared.settings import Settings

CONSUMER = web.AppKey("notifier_consumer", NotifierConsumer)


def create_app(settings: Settings) -> web.Application:
    # new_app's cleanup_ctx opens the pool first, so it closes it last
    app = new_app(settings, "notifier")
    app.cleanup_ctx.append(_consumer_ctx)
    app.cleanup_ctx.append(background("mail-sender", _run_mail_sender))
    return app


async def _run_mail_sender(app: web.Application) -> None:
    settings, handler = app[SETTINGS], app[CONSUMER].handler
    # Mail is off the confirmation's path: each mail waits (briefly) for the consumer to
    # have no event in hand, so the two never compete for this process's CPU in a burst.
    sender = MailSender(app[POOL], settings,
                        give_way=lambda: handler.until_idle(settings.mail_give_way_seconds))
    # An applied event may have enqueued a mail: send it now rather than at the next poll.
    handler.listeners.append(lambda outcome, _: sender.wake() if outcome == "applied" else None)
    await sender.run()


async def _consumer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    confirms = confirm_batches(app[POOL], settings)
    consumer = NotifierConsumer(settings, MessageHandler(pool_apply(app[POOL], settings,
                                                                    confirms)))
    app[CONSUMER] = consumer
    readiness.add_check(app, "broker", lambda _: consumer.broker_ready())
    # Tasks, not awaits: /healthz answers while the broker is still coming up.
    tasks = [asyncio.create_task(consumer.run(), name="notifier-consumer"),
             asyncio.create_task(_poll_dead_letters(consumer), name="dead-letters")]
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await confirms.close()


async def _poll_dead_letters(consumer: NotifierConsumer) -> None:
    """The DLQ's depth as a gauge, so an alert fires on the first dead letter."""
    while True:
        connection = consumer.connection
        if consumer.broker_ready() and connection is not None:
            try:
                metrics.DEAD_LETTERS.set(await dead_letter_depth(connection, consumer.settings))
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker is away: the consumer's own warning says so
                pass
        await asyncio.sleep(consumer.settings.metrics_poll_seconds)
