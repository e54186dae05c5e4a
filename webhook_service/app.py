"""webhook_service: Razorpay's webhooks and its outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from shared.service import POOL, background, new_app, razorpay_ctx, run_outbox_relay
from shared.settings import Settings
from webhook_service import routes
from webhook_service.handlers import delivery_batches
from webhook_service.views import BACKGROUND, DELIVERIES


def create_app(settings: Settings, *, relay: bool = True):
    app = new_app(settings, "webhook_service")
    app.cleanup_ctx.append(razorpay_ctx)
    app.cleanup_ctx.append(_deliveries_and_background)
    if relay:
        app.cleanup_ctx.append(background("outbox-relay", run_outbox_relay))
    routes.setup(app)
    return app


async def _deliveries_and_background(app: web.Application) -> AsyncIterator[None]:
    app[BACKGROUND] = set()
    app[DELIVERIES] = delivery_batches(app[POOL])
    yield
    await app[DELIVERIES].close()
    for task in list(app[BACKGROUND]):
        task.cancel()
    await asyncio.gather(*app[BACKGROUND], return_exceptions=True)
