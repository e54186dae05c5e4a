"""Refunds settle later, as at Razorpay: `pending` when made, then processed (or failed,
when a test asks for it) after a configurable delay, each move sent as a signed webhook."""

from __future__ import annotations

import asyncio

from razorpay_sandbox.store import Store
from razorpay_sandbox.webhook_options import WebhookOptions
from razorpay_sandbox.webhooks import WebhookDispatcher


class RefundSettler:
    def __init__(self, store: Store, dispatcher: WebhookDispatcher, delay_seconds: float):
        self._store = store
        self._dispatcher = dispatcher
        self.delay_seconds = delay_seconds
        self._tasks: set[asyncio.Task] = set()

    def settle_later(self, refund_id: str) -> None:
        task = asyncio.create_task(self._settle(refund_id, self.delay_seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, refund_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._dispatcher.publish(self._store.settle_refund(refund_id), WebhookOptions())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
