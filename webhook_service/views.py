"""POST /api/razorpay/webhook: raw bytes → verify → parse → apply → 2xx."""

from __future__ import annotations

import asyncio
import json
import logging
import re

from aiohttp import web

from shared import metrics
from shared.coalesce import Coalescer
from shared.http import HttpError
from shared.payment_state import PaymentStatus
from shared.service import POOL, RAZORPAY, SETTINGS
from shared.signatures import webhook_signature_valid
from webhook_service import handlers

log = logging.getLogger(__name__)
BACKGROUND = web.AppKey("background", set)
CAPTURES: web.AppKey[Coalescer] = web.AppKey("captures")
_ROUTINE = frozenset({"applied", "duplicate", "stale"})

# Razorpay's event names (`payment.captured`, `refund.processed`, …): a signed delivery's
# name is Razorpay's, a finite list; the pattern still keeps odd values from minting series.
_EVENT_NAME = re.compile(r"[a-z_]{1,30}(\.[a-z_]{1,30}){1,2}")
UNVERIFIED = "unverified"  # the event label before the signature is checked
# What we record in webhook_events → what the metric says.
_OUTCOME_LABEL = {"ignored_event": "unknown_event"}


def _count(event: object, outcome: str) -> None:
    known = event in (UNVERIFIED, metrics.OTHER)
    label = event if known or (isinstance(event, str) and _EVENT_NAME.fullmatch(event)) else (
        metrics.OTHER)
    metrics.WEBHOOK_DELIVERIES.labels(label, _OUTCOME_LABEL.get(outcome, outcome)).inc()


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
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        _count(metrics.OTHER, "malformed")
        raise HttpError("Malformed webhook payload", 400) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        _count(metrics.OTHER, "malformed")
        raise HttpError("Malformed webhook payload", 400)

    header_id = request.headers.get("X-Razorpay-Event-Id", "")[:128] or None
    key = handlers.event_key(header_id, payload, raw)
    try:
        result = await handlers.apply_webhook(
            request.app[POOL], key, payload, request.headers.get("X-Request-Id"),
            request.app.get(CAPTURES))
    except Exception:
        _count(payload["event"], "error")  # database away: 503, Razorpay retries
        raise
    _count(payload["event"], result)
    # Every delivery is in webhook_events with its outcome; the log line is for the unusual.
    level = logging.DEBUG if result in _ROUTINE else logging.INFO
    log.log(level, "webhook handled", extra={"ctx": {"event": payload["event"], "result": result}})
    if result == "applied" and settings.capture_on_verify:
        outcome = handlers.outcome_of(payload)
        if outcome is not None and outcome.status is PaymentStatus.AUTHORIZED:
            _in_background(request.app, handlers.capture_and_record(
                request.app[POOL], request.app[RAZORPAY], outcome))
    return web.json_response({"status": "ok"})


def _in_background(app: web.Application, coro) -> None:
    """Answer Razorpay now (its limit is 5 s); the capture call may take longer."""
    task = asyncio.create_task(coro)
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)
