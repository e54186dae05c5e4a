"""Checkout simulation: pay an order as a customer would, by JSON call or by web page.

Both ways end the same: a payment with the chosen outcome, its webhooks on their way,
and the fields Razorpay Checkout hands the merchant (the three `razorpay_*` fields with
their signature, or an `error`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aiohttp import web

from razorpay_sandbox import pages
from razorpay_sandbox.entities import FAILURE, Payment
from razorpay_sandbox.errors import ApiError
from razorpay_sandbox.keys import DISPATCHER, SETTINGS, STORE
from razorpay_sandbox.store import Outcome
from razorpay_sandbox.validation import parse_json_object
from razorpay_sandbox.webhook_options import WebhookOptions


def payment_signature(order_id: str, payment_id: str, key_secret: str) -> str:
    message = f"{order_id}|{payment_id}".encode()
    return hmac.new(key_secret.encode(), message, hashlib.sha256).hexdigest()


def parse_outcome(value: Any) -> Outcome:
    try:
        return Outcome(value)
    except ValueError:
        raise ApiError("outcome must be one of " + ", ".join(Outcome), field="outcome") from None


def pay(app: web.Application, order_id: str, outcome: Outcome, options: WebhookOptions):
    """Make the payment, start its webhooks, and return what Checkout gives the merchant."""
    payment, events = app[STORE].pay(order_id, outcome)
    app[DISPATCHER].publish(events, options)
    return checkout_result(payment, outcome, app[SETTINGS].razorpay_key_secret)


def checkout_result(payment: Payment, outcome: Outcome, key_secret: str) -> dict[str, Any]:
    # A late authorisation reaches the customer as a failure; only webhooks (and the API)
    # learn later that the money came through.
    if outcome in (Outcome.FAILED, Outcome.LATE_AUTHORIZED):
        error = {
            "code": FAILURE["error_code"],
            "description": FAILURE["error_description"],
            "source": FAILURE["error_source"],
            "step": FAILURE["error_step"],
            "reason": FAILURE["error_reason"],
            "metadata": {"payment_id": payment.id, "order_id": payment.order_id},
        }
        return {"error": error, "payment": payment.entity()}
    return {
        "razorpay_payment_id": payment.id,
        "razorpay_order_id": payment.order_id,
        "razorpay_signature": payment_signature(payment.order_id, payment.id, key_secret),
        "payment": payment.entity(),
    }


def callback_fields(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The form fields Razorpay Checkout posts to a merchant's callback_url."""
    error = result.get("error")
    if error is None:
        names = ("razorpay_payment_id", "razorpay_order_id", "razorpay_signature")
        return [(name, result[name]) for name in names]
    # As Razorpay posts a failure: each part of the error, the metadata as a JSON string
    return [(f"error[{name}]", error[name] if name != "metadata" else json.dumps(error[name]))
            for name in ("code", "description", "source", "step", "reason", "metadata")]


async def pay_json(request: web.Request) -> web.Response:
    body = parse_json_object(await request.read(), allow_empty=True)
    outcome = parse_outcome(body.get("outcome", "captured"))
    options = WebhookOptions.parse(body.get("webhooks"))
    result = pay(request.app, request.match_info["order_id"], outcome, options)
    return web.json_response(result)


async def checkout_page(request: web.Request) -> web.Response:
    order_id = request.query.get("order_id", "")
    # Razorpay Checkout is opened with the merchant's callback_url; a bare link (the one
    # `make run` prints) returns to ours.
    default = request.app[SETTINGS].sandbox_callback_url
    callback_url = request.query.get("callback_url") or default
    if not pages.is_web_url(callback_url):
        return pages.message("Invalid callback_url", "callback_url must be an http(s) URL.", 400)
    order = request.app[STORE].orders.get(order_id)
    if order is None:
        return pages.message("Unknown order", f"No order {order_id!r} in the sandbox.", 404)
    return pages.checkout(order, callback_url)


async def checkout_pay(request: web.Request) -> web.Response:
    form = await request.post()
    order_id = str(form.get("order_id", ""))
    callback_url = str(form.get("callback_url", ""))
    if not pages.is_web_url(callback_url):
        return pages.message("Invalid callback_url", "callback_url must be an http(s) URL.", 400)
    try:
        outcome = parse_outcome(form.get("outcome"))
        result = pay(request.app, order_id, outcome, WebhookOptions())
    except ApiError as exc:
        return pages.message("Payment not possible", exc.description, exc.status)
    return pages.callback(callback_url, callback_fields(result))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/sandbox/orders/{order_id}/pay", pay_json)
    app.router.add_get("/checkout", checkout_page)
    app.router.add_post("/checkout/pay", checkout_pay)
