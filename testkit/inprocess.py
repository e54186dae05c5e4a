"""An in-process Razorpay sandbox for handler-level integration tests."""

from __future__ import annotations

from contextlib import asynccontextmanager

from aiohttp import web

from razorpay_sandbox.app import create_app as create_sandbox
from shared.settings import Settings
from testkit.infra import free_port


@asynccontextmanager
async def running_sandbox(base: Settings, **overrides):
    """Settings pointing at a fresh sandbox on a free port (webhooks go nowhere)."""
    port = free_port()
    settings = base.model_copy(update={
        "razorpay_base_url": f"http://127.0.0.1:{port}",
        "sandbox_webhook_url": "http://127.0.0.1:9/unused",
        **overrides,
    })
    runner = web.AppRunner(create_sandbox(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield settings
    finally:
        await runner.cleanup()
