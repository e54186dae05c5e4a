"""One authentic webhook delivery applied the way webhook_service applies it: parsed once,
then through the service's group commit (here a batch of its own)."""

from __future__ import annotations

import json
import time

import asyncpg

from shared.webhook_outcome import WebhookOutcome
from webhook_service.delivery import parse_delivery
from webhook_service.handlers import apply_delivery, delivery_batches


async def apply_webhook(pool: asyncpg.Pool, key: str, payload: dict,
                        correlation_id: str | None = None) -> WebhookOutcome:
    delivery = parse_delivery(json.dumps(payload).encode(), key.removeprefix("id:"),
                              correlation_id)
    batches = delivery_batches(pool)
    try:
        return await apply_delivery(pool, batches, delivery)
    finally:
        await batches.close()


def webhook(event: str, payment: dict, refund: dict | None = None) -> dict:
    """The body Razorpay sends for `event` about a payment entity (and a refund entity)."""
    payload = {"payment": {"entity": payment}}
    if refund is not None:
        payload["refund"] = {"entity": refund}
    return {"entity": "event", "event": event, "payload": payload,
            "created_at": int(time.time())}
