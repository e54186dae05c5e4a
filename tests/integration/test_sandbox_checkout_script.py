"""The sandbox's Checkout script and its modal, over HTTP (the browser tests drive them in
Chromium): served without credentials, the modal shows the order or Razorpay's error, and
its buttons pay through the sandbox's one payment path."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest_asyncio
import razorpay
from aiohttp import web

from razorpay_sandbox.app import create_app
from shared.settings import load_settings

KEY_ID = "rzp_test_scripttests"
KEY_SECRET = "script_tests_key_secret"
ORIGIN = "http://shop.example"


@pytest_asyncio.fixture(scope="module")
async def sandbox():
    # Webhooks go to a closed port once: these tests read only the sandbox's answers.
    settings = load_settings(razorpay_key_id=KEY_ID, razorpay_key_secret=KEY_SECRET,
                             sandbox_webhook_url="http://127.0.0.1:1/webhook",
                             sandbox_webhook_max_attempts=1)
    runner = web.AppRunner(create_app(settings), shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}"
    async with aiohttp.ClientSession(base_url=url) as http:
        http.sandbox_url = url
        yield http
    await runner.cleanup()


async def new_order(sandbox, amount=123_450):
    """Through the SDK, off this loop: the sandbox answers on it."""
    client = razorpay.Client(auth=(KEY_ID, KEY_SECRET), base_url=sandbox.sandbox_url)
    return await asyncio.to_thread(client.order.create, {"amount": amount, "currency": "INR"})


async def modal(sandbox, **params):
    query = {"key": KEY_ID, "origin": ORIGIN, "name": "A6 Cars", **params}
    async with sandbox.get("/checkout/modal", params=query) as answer:
        return answer.status, await answer.text(), answer.headers


async def test_the_script_is_public_and_defines_razorpay(sandbox):
    async with sandbox.get("/v1/checkout.js") as answer:
        assert answer.status == 200
        assert answer.content_type == "application/javascript"
        assert "window.Razorpay = Razorpay" in await answer.text()
    async with sandbox.get("/v1/orders") as answer:  # the API beside it still needs the key
        assert answer.status == 401


async def test_the_modal_shows_merchant_amount_prefill_and_the_three_buttons(sandbox):
    order = await new_order(sandbox)
    status, page, headers = await modal(
        sandbox, order_id=order["id"], description="Booking #7", theme_color="#123abc",
        prefill_name="Gaurav Kumar", prefill_email="gaurav@example.com",
        prefill_contact="9000090000", notes=json.dumps({"booking_id": "7"}))
    assert status == 200
    for shown in ("A6 Cars", "Booking #7", "\u20b91,234.50", "Gaurav Kumar",
                  "gaurav@example.com", "9000090000", "booking_id", "#123abc"):
        assert shown in page, shown
    assert re.findall(r"<button[^>]*>([^<]+)</button>", page) == [
        "Pay", "Authorize only", "Fail", "Close"]
    assert f'data-origin="{ORIGIN}"' in page
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors *" in csp and "script-src 'self'" in csp
    assert "<script>" not in page  # its one script is a file of ours


async def test_the_modal_escapes_what_the_page_passes(sandbox):
    order = await new_order(sandbox)
    _, page, _ = await modal(sandbox, order_id=order["id"], name="<script>x</script>",
                             theme_color="red;}</style><script>", image="javascript:alert(1)",
                             notes=json.dumps({"<b>": "<img src=x>"}))
    assert "<script>x" not in page and "<img src=x>" not in page and "<b>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "javascript:" not in page and "red;}" not in page


async def test_wrong_key_or_unknown_order_shows_razorpays_error_and_no_pay_button(sandbox):
    order = await new_order(sandbox)
    for params, description in (
            ({"order_id": order["id"], "key": "rzp_test_wrong"},
             "The api key provided is invalid"),
            ({"order_id": "order_NoSuchOrder0001"}, "The id provided does not exist")):
        status, page, _ = await modal(sandbox, **params)
        assert status == 200
        assert f"BAD_REQUEST_ERROR: {description}" in page
        assert "data-outcome" not in page and ">Close</button>" in page
    status, _, _ = await modal(sandbox, order_id=order["id"], origin="javascript:alert(1)")
    assert status == 400


async def pay(sandbox, order_id, outcome, key=KEY_ID):
    body = {"key": key, "order_id": order_id, "outcome": outcome}
    async with sandbox.post("/checkout/modal/pay", json=body) as answer:
        return answer.status, await answer.json()


async def test_pay_hands_back_the_signed_fields_and_their_callback_form(sandbox):
    order = await new_order(sandbox)
    status, result = await pay(sandbox, order["id"], "captured")
    assert status == 200 and "payment" not in result
    fields = {k: result[k] for k in ("razorpay_payment_id", "razorpay_order_id",
                                     "razorpay_signature")}
    client = razorpay.Client(auth=(KEY_ID, KEY_SECRET))
    assert client.utility.verify_payment_signature(fields) is True
    assert [tuple(f) for f in result["callback_fields"]] == list(fields.items())


async def test_fail_hands_back_razorpays_error_object_and_its_form(sandbox):
    order = await new_order(sandbox)
    status, result = await pay(sandbox, order["id"], "failed")
    assert status == 200
    error = result["error"]
    assert set(error) == {"code", "description", "source", "step", "reason", "metadata"}
    assert error["metadata"]["order_id"] == order["id"]
    assert error["metadata"]["payment_id"].startswith("pay_")
    form = dict(result["callback_fields"])
    assert list(form) == ["error[code]", "error[description]", "error[source]",
                          "error[step]", "error[reason]", "error[metadata]"]
    assert json.loads(form["error[metadata]"]) == error["metadata"]


async def test_pay_refuses_a_wrong_key_an_unknown_order_or_outcome(sandbox):
    order = await new_order(sandbox)
    status, body = await pay(sandbox, order["id"], "captured", key="rzp_test_wrong")
    assert status == 401 and body["error"]["description"] == "The api key provided is invalid"
    status, body = await pay(sandbox, "order_NoSuchOrder0001", "captured")
    assert status == 400 and body["error"]["code"] == "BAD_REQUEST_ERROR"
    status, body = await pay(sandbox, order["id"], "maybe")
    assert status == 400 and body["error"]["field"] == "outcome"
