"""order_service: create-order, payment-status, its outbox relay and the reconciler."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from order_service import routes
from order_service.dispute_watch import run_dispute_watch
from order_service.handlers import status_reads
from order_service.keys import CREATE_POOL, STATUS_READS
from order_service.reconciler import run_reconciler
from order_service.refund_worker import run_refund_worker
from order_service.settlements import run_settlements
from shared.service import (
    POOL,
    SETTINGS,
    background,
    connect_pool,
    new_app,
    razorpay_ctx,
    run_outbox_relay,
)
from shared.settings import Settings


def create_app(settings: Settings, *, relay: bool = True, reconciler: bool = True):
    app = new_app(settings, "order_service")
    app.cleanup_ctx.append(razorpay_ctx)
    app.cleanup_ctx.append(_create_pool_ctx)
    app.cleanup_ctx.append(_status_reads_ctx)
    if relay:
        app.cleanup_ctx.append(background("outbox-relay", run_outbox_relay))
    if reconciler:
        app.cleanup_ctx.append(background("reconciler", run_reconciler))
        app.cleanup_ctx.append(background("refund-worker", run_refund_worker))
        app.cleanup_ctx.append(background("dispute-watch", run_dispute_watch))
        app.cleanup_ctx.append(background("settlements", run_settlements))
    routes.setup(app)
    return app


async def _create_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[CREATE_POOL] = await connect_pool(settings.model_copy(update={
        "db_pool_min": 1, "db_pool_max": settings.create_order_concurrency}))
    yield
    await app[CREATE_POOL].close()


async def _status_reads_ctx(app: web.Application) -> AsyncIterator[None]:
    app[STATUS_READS] = status_reads(app[POOL])
    yield
    await app[STATUS_READS].close()
