"""Razorpay's Checkout script, as the sandbox serves it: `GET /v1/checkout.js` defines
`window.Razorpay`, whose `.open()` frames the modal below (a page of the sandbox, as
Razorpay's is of its own origin). The modal pays through `checkout.pay`, the one path
every simulated payment takes, and hands its result to the merchant's page by
postMessage; the script turns it into `handler`, `payment.failed` or a callback_url form.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from aiohttp import web

from razorpay_sandbox import pages
from razorpay_sandbox.checkout import callback_fields, parse_outcome, pay
from razorpay_sandbox.errors import ApiError, invalid_api_key, not_found
from razorpay_sandbox.keys import SETTINGS, STORE
from razorpay_sandbox.validation import parse_json_object
from razorpay_sandbox.webhook_options import WebhookOptions

SCRIPT_PATH = "/v1/checkout.js"  # the path of Razorpay's own script
MODAL_PATH = "/checkout/modal"


@functools.cache
def _static(name: str) -> str:
    return resources.files("razorpay_sandbox").joinpath("static", name).read_text("utf-8")


def _script(name: str) -> web.Response:
    return web.Response(text=_static(name), content_type="application/javascript",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


async def checkout_script(request: web.Request) -> web.Response:
    return _script("checkout.js")


async def modal_script(request: web.Request) -> web.Response:
    return _script("modal.js")


def _checked_order(app: web.Application, key: str, order_id: str):
    """The order the modal may pay, or Razorpay's error for a wrong key or an unknown order."""
    if key != app[SETTINGS].razorpay_key_id:
        raise invalid_api_key()
    order = app[STORE].orders.get(order_id)
    if order is None:
        raise not_found()
    return order


async def modal_page(request: web.Request) -> web.Response:
    """The framed checkout: merchant, the order's amount, the prefill; Pay, Fail, Close."""
    query = request.query
    origin = query.get("origin", "")
    if not pages.is_web_url(origin):
        return pages.message("Invalid origin", "origin must be the merchant page's origin.", 400)
    options = pages.ModalOptions.from_query(query)
    key = query.get("key", "")
    try:
        order = _checked_order(request.app, key, query.get("order_id", ""))
    except ApiError as exc:
        return pages.modal(options, origin, key, error=exc)
    return pages.modal(options, origin, key, order=order)


async def modal_pay(request: web.Request) -> web.Response:
    """The modal's buttons: pay the order with that outcome; Razorpay's error otherwise."""
    body = parse_json_object(await request.read())
    order = _checked_order(request.app, str(body.get("key", "")), str(body.get("order_id", "")))
    outcome = parse_outcome(body.get("outcome"))
    result: dict[str, Any] = pay(request.app, order.id, outcome, WebhookOptions())
    result.pop("payment")  # Checkout hands the merchant only its fields, never the entity
    return web.json_response({**result, "callback_fields": callback_fields(result)})


def add_routes(app: web.Application) -> None:
    app.router.add_get(SCRIPT_PATH, checkout_script)
    app.router.add_get(MODAL_PATH, modal_page)
    app.router.add_get(MODAL_PATH + ".js", modal_script)
    app.router.add_post(MODAL_PATH + "/pay", modal_pay)
