"""Loopback controls for tests: inspect and resend webhooks, stats, faults, reset."""

from __future__ import annotations

from aiohttp import web

from razorpay_sandbox.entities import RefundStatus
from razorpay_sandbox.errors import ApiError, not_found
from razorpay_sandbox.faults import FaultRule
from razorpay_sandbox.keys import BOOK, DISPATCHER, DISPUTES, FAULTS, REFUND_SETTLER, STORE
from razorpay_sandbox.validation import parse_json_object


async def list_webhooks(request: web.Request) -> web.Response:
    deliveries = request.app[DISPATCHER].deliveries.values()
    items = [d.summary() for d in deliveries]
    return web.json_response({"count": len(items), "items": items})


async def redeliver_webhook(request: web.Request) -> web.Response:
    event_id = parse_json_object(await request.read()).get("event_id")
    if not isinstance(event_id, str):
        raise ApiError("event_id is required", field="event_id")
    record = request.app[DISPATCHER].redeliver(event_id)
    if record is None:
        raise not_found("No webhook event with this id", status=404)
    return web.json_response(record.summary())


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STORE].stats())


async def set_faults(request: web.Request) -> web.Response:
    rule = FaultRule.parse(parse_json_object(await request.read()))
    request.app[FAULTS].set(rule)
    return web.json_response(rule.summary())


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS].rule.summary())


async def set_refund_behaviour(request: web.Request) -> web.Response:
    """`{"outcome": "processed"|"failed", "delay_seconds": float}` for refunds made next."""
    body = parse_json_object(await request.read())
    store, settler = request.app[STORE], request.app[REFUND_SETTLER]
    if "outcome" in body:
        if body["outcome"] not in ("processed", "failed"):
            raise ApiError("outcome must be processed or failed", field="outcome")
        store.refund_outcome = RefundStatus(body["outcome"])
    if "delay_seconds" in body:
        delay = body["delay_seconds"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
            raise ApiError("delay_seconds must be from 0 to 3600", field="delay_seconds")
        settler.delay_seconds = float(delay)
    return web.json_response(
        {"outcome": str(store.refund_outcome), "delay_seconds": settler.delay_seconds})


async def reset(request: web.Request) -> web.Response:
    request.app[STORE].reset()
    request.app[DISPUTES].reset()
    request.app[BOOK].reset()
    request.app[FAULTS].clear()
    await request.app[DISPATCHER].reset()
    return web.json_response({"status": "reset"})


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sandbox/webhooks", list_webhooks)
    app.router.add_post("/sandbox/webhooks/redeliver", redeliver_webhook)
    app.router.add_get("/sandbox/stats", stats)
    app.router.add_get("/sandbox/faults", get_faults)
    app.router.add_post("/sandbox/faults", set_faults)
    app.router.add_post("/sandbox/reset", reset)
    app.router.add_post("/sandbox/refunds", set_refund_behaviour)
    app.router.add_get("/healthz", health)
