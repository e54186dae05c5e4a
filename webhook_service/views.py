"""POST /api/razorpay/webhook: raw bytes → verify → parse → apply → 2xx."""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web

from shared import metrics
from shared.http import HttpError
from shared.payment_state import PaymentStatus
from shared.service import POOL, RAZORPAY, SETTINGS
from shared.signatures import webhook_signature_valid
from shared.webhook_outcome import WebhookOutcome
from webhook_service import handlers
from webhook_service.delivery import MalformedDelivery, parse_delivery

log = logging.getLogger(__name__)
BACKGROUND = web.AppKey("background", set)
DELIVERIES: web.AppKey[handlers.Batches] = web.AppKey("deliveries")
_ROUTINE = frozenset({WebhookOutcome.APPLIED, WebhookOutcome.DUPLICATE, WebhookOutcome.STALE})

# Razorpay's event names (`payment.captured`, `refund.processed`, …): a signed delivery's
# name is Razorpay's, a finite list; the pattern still keeps odd values from minting series.
_EVENT_NAME = re.compile(r"[a-z_]{1,30}(\.[a-z_]{1,30}){1,2}")
UNVERIFIED = "unverified"  # the event label before the signature is checked
# What we record in webhook_events → what the metric says.
_OUTCOME_LABEL = {WebhookOutcome.IGNORED_EVENT: "unknown_event"}


def _count(event: str, outcome: str) -> None:
    if event not in (UNVERIFIED, metrics.OTHER) and not _EVENT_NAME.fullmatch(event):
        event = metrics.OTHER
    metrics.WEBHOOK_DELIVERIES.labels(event, _OUTCOME_LABEL.get(outcome, outcome)).inc()


async def webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    raw = await request.read()  # the exact bytes Razorpay signed: never re-serialise
    signature = request.headers.get("X-Razorpay-Signature", "")
    if not signature:
        _count(UNVERIFIED, "bad_signature")
        raise HttpError("Missing webhook signature", 400)
    if not webhook_signature_valid(raw, signature, settings.webhook_secrets):
        _count(UNVERIFIED, "bad_signature")
        log.warning("webhook rejected: bad signature")
        raise HttpError("Invalid webhook signature", 400)
    try:
        delivery = parse_delivery(raw, request.headers.get("X-Razorpay-Event-Id", "")[:128] or None,
                                  request.headers.get("X-Request-Id"))
    except MalformedDelivery:
        _count(metrics.OTHER, "malformed")
        raise HttpError("Malformed webhook payload", 400) from None
    try:
        result = await handlers.apply_delivery(request.app[POOL], request.app[DELIVERIES],
                                               delivery)
    except handlers.TryAgain:
        _count(delivery.event, "error")
        raise HttpError("Webhook not applied yet. Please retry.", 503) from None
    except Exception:
        _count(delivery.event, "error")  # database away: 503, Razorpay retries
        raise
    _count(delivery.event, result)
    # Every delivery is in webhook_events with its outcome; the log line is for the unusual.
    level = logging.DEBUG if result in _ROUTINE else logging.INFO
    log.log(level, "webhook handled", extra={"ctx": {"event": delivery.event, "result": result}})
    if (result is WebhookOutcome.APPLIED and settings.capture_on_verify
            and delivery.payment.status is PaymentStatus.AUTHORIZED):
        # In the background: Razorpay is answered now (its limit is 5 s); the capture call
        # may take longer.
        task = asyncio.create_task(handlers.capture_and_record(
            request.app[POOL], request.app[RAZORPAY], delivery.payment))
        request.app[BACKGROUND].add(task)
        task.add_done_callback(request.app[BACKGROUND].discard)
    return web.json_response({"status": "ok"})
