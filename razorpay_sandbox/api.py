"""The /v1 views: Razorpay's orders and payments API, as far as our services use it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from razorpay_sandbox.keys import DISPATCHER, REFUND_SETTLER, SETTINGS, STORE
from razorpay_sandbox.validation import (
    parse_capture,
    parse_json_object,
    parse_new_order,
    parse_page,
    parse_refund,
)
from razorpay_sandbox.webhook_options import WebhookOptions


def collection(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"entity": "collection", "count": len(items), "items": items}


async def create_order(request: web.Request) -> web.Response:
    body = parse_json_object(await request.read())
    supported = request.app[SETTINGS].sandbox_unique_receipt_supported
    new_order = parse_new_order(body, unique_receipt_supported=supported)
    order, _created = request.app[STORE].create_order(new_order)
    return web.json_response(order.entity())


async def list_orders(request: web.Request) -> web.Response:
    count, skip = parse_page(request.query)
    receipt = request.query.get("receipt")
    orders = request.app[STORE].list_orders(count=count, skip=skip, receipt=receipt)
    return web.json_response(collection([o.entity() for o in orders]))


async def fetch_order(request: web.Request) -> web.Response:
    order = request.app[STORE].order(request.match_info["order_id"])
    return web.json_response(order.entity())


async def order_payments(request: web.Request) -> web.Response:
    payments = request.app[STORE].order_payments(request.match_info["order_id"])
    return web.json_response(collection([p.entity() for p in payments]))


async def fetch_payment(request: web.Request) -> web.Response:
    payment = request.app[STORE].payment(request.match_info["payment_id"])
    return web.json_response(payment.entity())


async def capture_payment(request: web.Request) -> web.Response:
    amount, currency = parse_capture(parse_json_object(await request.read()))
    store = request.app[STORE]
    payment_id = request.match_info["payment_id"]
    events = store.capture(payment_id, amount, currency)
    request.app[DISPATCHER].publish(events, WebhookOptions())
    return web.json_response(store.payment(payment_id).entity())


async def refund_payment(request: web.Request) -> web.Response:
    new_refund = parse_refund(parse_json_object(await request.read(), allow_empty=True))
    key = request.headers.get("X-Refund-Idempotency")
    refund, events = request.app[STORE].refund(request.match_info["payment_id"], new_refund, key)
    request.app[DISPATCHER].publish(events, WebhookOptions())
    if events:  # a refund made now, not one an idempotency key found again
        request.app[REFUND_SETTLER].settle_later(refund.id)
    return web.json_response(refund.entity())


async def payment_refunds(request: web.Request) -> web.Response:
    count, skip = parse_page(request.query)
    refunds = request.app[STORE].payment_refunds(request.match_info["payment_id"])
    return web.json_response(collection([r.entity() for r in refunds[skip : skip + count]]))


async def fetch_refund(request: web.Request) -> web.Response:
    refund = request.app[STORE].refund_by_id(request.match_info["refund_id"])
    return web.json_response(refund.entity())


async def list_refunds(request: web.Request) -> web.Response:
    count, skip = parse_page(request.query)
    refunds = request.app[STORE].list_refunds(count=count, skip=skip)
    return web.json_response(collection([r.entity() for r in refunds]))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/orders", create_order)
    app.router.add_get("/v1/orders", list_orders)
    app.router.add_get("/v1/orders/{order_id}", fetch_order)
    app.router.add_get("/v1/orders/{order_id}/payments", order_payments)
    app.router.add_get("/v1/payments/{payment_id}", fetch_payment)
    app.router.add_post("/v1/payments/{payment_id}/capture", capture_payment)
    app.router.add_post("/v1/payments/{payment_id}/refund", refund_payment)
    app.router.add_get("/v1/payments/{payment_id}/refunds", payment_refunds)
    app.router.add_get("/v1/refunds", list_refunds)
    app.router.add_get("/v1/refunds/{refund_id}", fetch_refund)
