"""notifier: /healthz, the pool, and the event consumer for the app's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from notifier.consumer import MessageHandler, NotifierConsumer, pool_apply
from shared.service import POOL, SETTINGS, new_app
from shared.settings import Settings

CONSUMER = web.AppKey("notifier_consumer", NotifierConsumer)


def create_app(settings: Settings) -> web.Application:
    app = new_app(settings)  # its cleanup_ctx opens the pool first, so it closes it last
    app.cleanup_ctx.append(_consumer_ctx)
    return app


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
