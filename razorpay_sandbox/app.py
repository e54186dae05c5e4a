"""The sandbox application: Razorpay's /v1 API, checkout simulation and test controls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from razorpay_sandbox import api, checkout, checkout_script, control, dispute_api, settlement_api
from razorpay_sandbox.disputes import DisputeBook
from razorpay_sandbox.faults import FaultInjector
from razorpay_sandbox.keys import DISPATCHER, DISPUTES, FAULTS, REFUND_SETTLER, SETTINGS, STORE
from razorpay_sandbox.middleware import api_middleware, error_middleware
from razorpay_sandbox.refunds import RefundSettler
from razorpay_sandbox.store import Store
from razorpay_sandbox.webhooks import RetryPolicy, WebhookDispatcher
from shared.settings import Settings

MAX_BODY_BYTES = 256 * 1024


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_seconds=settings.sandbox_webhook_retry_base_seconds,
        max_delay_seconds=settings.sandbox_webhook_max_delay_seconds,
        max_attempts=settings.sandbox_webhook_max_attempts,
        timeout_seconds=settings.sandbox_webhook_timeout_seconds,
    )


async def webhook_dispatcher(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    secrets = settings.webhook_secrets
    if not secrets:
        raise RuntimeError("razorpay_webhook_secret is empty: webhooks could not be signed")
    async with aiohttp.ClientSession() as session:
        dispatcher = WebhookDispatcher(
            session, settings.sandbox_webhook_url, secrets[0], retry_policy(settings)
        )
        app[DISPATCHER] = dispatcher
        settler = RefundSettler(app[STORE], dispatcher, settings.sandbox_refund_delay_seconds)
        app[REFUND_SETTLER] = settler
        yield
        await settler.close()
        await dispatcher.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, api_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[SETTINGS] = settings
    app[STORE] = Store()
    app[DISPUTES] = DisputeBook(app[STORE])
    app[FAULTS] = FaultInjector()
    app.cleanup_ctx.append(webhook_dispatcher)
    app.cleanup_ctx.append(settlement_api.settlement_clock)
    api.add_routes(app)
    checkout.add_routes(app)
    checkout_script.add_routes(app)
    control.add_routes(app)
    dispute_api.add_routes(app)
    settlement_api.add_routes(app)
    return app
