"""Signed webhook delivery with Razorpay's habits: retries, duplicates, any order.

Every event gets one id and one body; retries, duplicates and redeliveries resend those
exact bytes, so a receiver can verify the signature over the raw body and dedupe on
`X-Razorpay-Event-Id`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp

from razorpay_sandbox.entities import new_id
from razorpay_sandbox.store import Event
from razorpay_sandbox.webhook_options import WebhookOptions

log = logging.getLogger(__name__)

ACCOUNT_ID = "acc_SandboxA6Pay01"


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    max_attempts: int = 10
    timeout_seconds: float = 5.0

    def delays(self):
        """The waits before each retry: base, doubling, capped."""
        delay = self.base_seconds
        for _ in range(self.max_attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay_seconds)


@dataclass
class Delivery:
    event_id: str
    event: str
    payment_id: str
    order_id: str
    body: bytes
    state: str = "pending"  # pending | delivered | failed | dropped
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event": self.event,
            "payment_id": self.payment_id,
            "order_id": self.order_id,
            "state": self.state,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


def event_body(event: Event) -> bytes:
    payload: dict[str, Any] = {}
    contains = []
    if event.dispute is not None:
        payload["dispute"] = {"entity": event.dispute}
        contains.append("dispute")
    if event.refund is not None:
        payload["refund"] = {"entity": event.refund}
        contains.append("refund")
    payload["payment"] = {"entity": event.payment}
    contains.append("payment")
    if event.order is not None:
        payload["order"] = {"entity": event.order}
        contains.append("order")
    body = {
        "entity": "event",
        "account_id": ACCOUNT_ID,
        "event": event.name,
        "contains": contains,
        "payload": payload,
        "created_at": event.created_at,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDispatcher:
    """Posts events to one URL in background tasks; `close()` cancels what is in flight."""

    def __init__(self, session: aiohttp.ClientSession, url: str, secret: str, policy: RetryPolicy):
        self._session = session
        self._url = url
        self._secret = secret
        self._policy = policy
        self._tasks: set[asyncio.Task] = set()
        self.deliveries: dict[str, Delivery] = {}

    def publish(self, events: list[Event], options: WebhookOptions) -> None:
        records = [self._record(event) for event in events]
        to_send = []
        for record in records:
            if options.delivers(record.event):
                to_send.append(record)
            else:
                record.state = "dropped"  # kept, so a test can redeliver it later
        if options.reorder:
            to_send.reverse()
        copies = [record for record in to_send for _ in range(1 + options.duplicate)]
        if copies:
            self._spawn(self._send_in_order(copies))

    def publish_entity(self, name: str, key: str, entity: dict[str, Any], created_at: int
                       ) -> None:
        """An event about an entity that is not a payment (`settlement.processed`)."""
        body = {"entity": "event", "account_id": ACCOUNT_ID, "event": name, "contains": [key],
                "payload": {key: {"entity": entity}}, "created_at": created_at}
        record = Delivery(event_id=new_id(), event=name, payment_id="", order_id="",
                          body=json.dumps(body, separators=(",", ":")).encode())
        self.deliveries[record.event_id] = record
        self._spawn(self._send_with_retries(record))

    def redeliver(self, event_id: str) -> Delivery | None:
        record = self.deliveries.get(event_id)
        if record is not None:
            record.state = "pending"
            self._spawn(self._send_with_retries(record))
        return record

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        await self.close()
        self.deliveries.clear()

    def _record(self, event: Event) -> Delivery:
        record = Delivery(
            event_id=new_id(),
            event=event.name,
            payment_id=event.payment["id"],
            order_id=event.payment["order_id"],
            body=event_body(event),
        )
        self.deliveries[record.event_id] = record
        return record

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_in_order(self, copies: list[Delivery]) -> None:
        # First attempts go out one after another so the receiver sees the chosen order;
        # a copy that fails retries on its own without holding up the rest.
        for record in copies:
            if not await self._attempt(record):
                self._spawn(self._retry(record))

    async def _send_with_retries(self, record: Delivery) -> None:
        if not await self._attempt(record):
            await self._retry(record)

    async def _retry(self, record: Delivery) -> None:
        for delay in self._policy.delays():
            await asyncio.sleep(delay)
            if await self._attempt(record):
                return
        if record.state != "delivered":
            record.state = "failed"
            log.warning("webhook gave up after %d attempts: %s", record.attempts, record.event)

    async def _attempt(self, record: Delivery) -> bool:
        record.attempts += 1
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign(record.body, self._secret),
            "X-Razorpay-Event-Id": record.event_id,
        }
        timeout = aiohttp.ClientTimeout(total=self._policy.timeout_seconds)
        try:
            async with self._session.post(
                self._url, data=record.body, headers=headers, timeout=timeout
            ) as response:
                await response.read()
                record.last_status, record.last_error = response.status, None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            record.last_status, record.last_error = None, type(exc).__name__
            log.info("webhook attempt failed: %s %s", record.event, type(exc).__name__)
            return False
        if 200 <= response.status < 300:
            record.state = "delivered"
            return True
        log.info("webhook answered %d: %s", response.status, record.event)
        return False
