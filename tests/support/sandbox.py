"""The Razorpay sandbox app on a free loopback port with a client for its control API, a
receiver that records the webhooks it sends, and the SDK run off the loop: what the
sandbox's own tests drive it with."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import razorpay
from aiohttp import web

from razorpay_sandbox.app import create_app

KEY_ID = "rzp_test_sandboxtests"
KEY_SECRET = "sandbox_tests_key_secret"
WEBHOOK_SECRET = "whsec_current"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event_id(self) -> str:
        return self.headers["X-Razorpay-Event-Id"]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.json["event"]


@dataclass
class Receiver:
    """Stands in for our webhook service: records every delivery, can answer 500."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(dict(request.headers), body, time.monotonic()))
        self.arrived.set()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "try later"}, status=500)
        return web.json_response({"status": "ok"})

    async def wait_for(self, count: int, within: float = 5.0) -> list[Received]:
        try:
            async with asyncio.timeout(within):
                while len(self.received) < count:
                    self.arrived.clear()
                    await self.arrived.wait()
        except TimeoutError:
            pytest.fail(f"expected {count} webhooks, got {[r.event for r in self.received]}")
        return self.received


@dataclass
class Sandbox:
    url: str
    http: aiohttp.ClientSession
    settings: Any

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.url + path, json=body) as response:
            return response.status, await response.json()

    async def pay(self, order_id: str, outcome: str = "captured", **webhooks) -> dict[str, Any]:
        body = {"outcome": outcome, "webhooks": webhooks or None}
        status, answer = await self.control("POST", f"/sandbox/orders/{order_id}/pay", body)
        assert status == 200, answer
        return answer

    async def webhooks(self) -> list[dict[str, Any]]:
        return (await self.control("GET", "/sandbox/webhooks"))[1]["items"]


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def running_sandbox(settings):
    """The sandbox app on a free port, with a client session for its control API."""
    runner, url = await start(create_app(settings))
    try:
        async with aiohttp.ClientSession() as http:
            yield Sandbox(url, http, settings)
    finally:
        await runner.cleanup()


def sdk_client(settings) -> razorpay.Client:
    """The official SDK on the Razorpay `settings` names: how a test reads what Razorpay
    holds, apart from the client the code under test uses."""
    return razorpay.Client(auth=(settings.razorpay_key_id, settings.razorpay_key_secret),
                           base_url=settings.razorpay_base_url.rstrip("/"))


async def sdk(method: Callable, *args, **kwargs) -> Any:
    """The SDK blocks; run it off the loop, as our services do."""
    return await asyncio.to_thread(method, *args, **kwargs)


async def new_order(client, amount: int = 50_000, **fields) -> dict[str, Any]:
    return await sdk(client.order.create, {"amount": amount, "currency": "INR", **fields})


def webhook_signature(body: bytes) -> str:
    return hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
