"""notifier: /healthz, the pool, the event consumer and the mail sender for the app's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from notifier.consumer import MessageHandler, NotifierConsumer, pool_apply
from notifier.mail_sender import MailSender
from shared.service import POOL, SETTINGS, background, new_app
from shared.settings import Settings

CONSUMER = web.AppKey("notifier_consumer", NotifierConsumer)


def create_app(settings: Settings) -> web.Application:
    app = new_app(settings)  # its cleanup_ctx opens the pool first, so it closes it last
    app.cleanup_ctx.append(_consumer_ctx)
    app.cleanup_ctx.append(background("mail-sender", _run_mail_sender))
    return app


async def _run_mail_sender(app: web.Application) -> None:
    sender = MailSender(app[POOL], app[SETTINGS])
    # An applied event may have enqueued a mail: send it now rather than at the next poll.
    app[CONSUMER].handler.listeners.append(
        lambda outcome, _: sender.wake() if outcome == "applied" else None)
    await sender.run()


async def _consumer_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    consumer = NotifierConsumer(settings, MessageHandler(pool_apply(app[POOL], settings)))
    app[CONSUMER] = consumer
    # A task, not an await: /healthz answers while the broker is still coming up.
    task = asyncio.create_task(consumer.run(), name="notifier-consumer")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
