"""The /v1 disputes and documents views, and the control calls that make money move without
us: a second capture on a paid order, a dashboard refund, a dispute raised and decided."""

from __future__ import annotations

from aiohttp import web

from razorpay_sandbox.api import collection
from razorpay_sandbox.errors import ApiError
from razorpay_sandbox.keys import DISPATCHER, DISPUTES, REFUND_SETTLER
from razorpay_sandbox.validation import is_int, parse_json_object, parse_page
from razorpay_sandbox.webhook_options import WebhookOptions

MAX_DOCUMENT_BYTES = 200 * 1024


async def list_disputes(request: web.Request) -> web.Response:
    count, skip = parse_page(request.query)
    disputes = request.app[DISPUTES].list(count=count, skip=skip)
    return web.json_response(collection([d.entity() for d in disputes]))


async def fetch_dispute(request: web.Request) -> web.Response:
    return web.json_response(request.app[DISPUTES].dispute(request.match_info["id"]).entity())


async def accept_dispute(request: web.Request) -> web.Response:
    book, dispute_id = request.app[DISPUTES], request.match_info["id"]
    request.app[DISPATCHER].publish(book.accept(dispute_id), WebhookOptions())
    return web.json_response(book.dispute(dispute_id).entity())


async def contest_dispute(request: web.Request) -> web.Response:
    book, dispute_id = request.app[DISPUTES], request.match_info["id"]
    body = parse_json_object(await request.read())
    request.app[DISPATCHER].publish(book.contest(dispute_id, body), WebhookOptions())
    return web.json_response(book.dispute(dispute_id).entity())


async def create_document(request: web.Request) -> web.Response:
    if not request.content_type.startswith("multipart/"):
        raise ApiError("The file field is required.", field="file")
    form = await request.post()
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, web.FileField):
        raise ApiError("The file field is required.", field="file")
    content = upload.file.read(MAX_DOCUMENT_BYTES + 1)
    if len(content) > MAX_DOCUMENT_BYTES:
        raise ApiError("The file may not be greater than 200 kilobytes.", field="file")
    document = request.app[DISPUTES].add_document(upload.filename or "document", content,
                                                  str(purpose or ""))
    return web.json_response(document.entity())


# Control calls (loopback, no auth, like the others under /sandbox)

async def second_capture(request: web.Request) -> web.Response:
    body = parse_json_object(await request.read(), allow_empty=True)
    payment, events = request.app[DISPUTES].second_capture(request.match_info["order_id"])
    request.app[DISPATCHER].publish(events, WebhookOptions.parse(body.get("webhooks")))
    return web.json_response(payment.entity())


async def dashboard_refund(request: web.Request) -> web.Response:
    body = parse_json_object(await request.read(), allow_empty=True)
    amount = body.get("amount")
    if amount is not None and not is_int(amount):
        raise ApiError("The amount must be an integer.", field="amount")
    refund, events = request.app[DISPUTES].dashboard_refund(request.match_info["payment_id"],
                                                            amount)
    request.app[DISPATCHER].publish(events, WebhookOptions.parse(body.get("webhooks")))
    request.app[REFUND_SETTLER].settle_later(refund.id)
    return web.json_response(refund.entity())


async def raise_dispute(request: web.Request) -> web.Response:
    body = parse_json_object(await request.read(), allow_empty=True)
    amount, respond_in = body.get("amount"), body.get("respond_in_seconds")
    for name, value in (("amount", amount), ("respond_in_seconds", respond_in)):
        if value is not None and not is_int(value):
            raise ApiError(f"{name} must be an integer", field=name)
    dispute, events = request.app[DISPUTES].raise_dispute(
        request.match_info["payment_id"], amount=amount,
        phase=str(body.get("phase", "chargeback")),
        reason_code=str(body.get("reason_code", "chargeback_request"))[:64],
        respond_in=respond_in)
    request.app[DISPATCHER].publish(events, WebhookOptions.parse(body.get("webhooks")))
    return web.json_response(dispute.entity())


async def decide_dispute(request: web.Request) -> web.Response:
    body = parse_json_object(await request.read())
    book, dispute_id = request.app[DISPUTES], request.match_info["id"]
    events = book.decide(dispute_id, str(body.get("decision")))
    request.app[DISPATCHER].publish(events, WebhookOptions.parse(body.get("webhooks")))
    return web.json_response(book.dispute(dispute_id).entity())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/disputes", list_disputes)
    app.router.add_get("/v1/disputes/{id}", fetch_dispute)
    app.router.add_post("/v1/disputes/{id}/accept", accept_dispute)
    app.router.add_patch("/v1/disputes/{id}/contest", contest_dispute)
    app.router.add_post("/v1/documents", create_document)
    app.router.add_post("/sandbox/orders/{order_id}/second-capture", second_capture)
    app.router.add_post("/sandbox/payments/{payment_id}/dashboard-refund", dashboard_refund)
    app.router.add_post("/sandbox/payments/{payment_id}/dispute", raise_dispute)
    app.router.add_post("/sandbox/disputes/{id}/decide", decide_dispute)
