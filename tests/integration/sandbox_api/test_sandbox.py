"""The Razorpay sandbox, driven through the official razorpay SDK like our services use it.

The sandbox runs in-process on a free loopback port; a small receiver app records the
webhooks it sends.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from html.parser import HTMLParser

import aiohttp
import pytest
import pytest_asyncio
import razorpay
import requests
from razorpay.errors import (
    BadRequestError,
    GatewayError,
    ServerError,
    SignatureVerificationError,
)

from shared.settings import load_settings
from tests.support.sandbox import (
    KEY_ID,
    KEY_SECRET,
    WEBHOOK_SECRET,
    Received,
    new_order,
    running_sandbox,
    sdk,
    webhook_signature,
)

OLD_WEBHOOK_SECRET = "whsec_previous"
RETRY_BASE = 0.05
MAX_ATTEMPTS = 4


# ---------------------------------------------------------------- fixtures and helpers


@pytest_asyncio.fixture(scope="module")
async def sandbox(receiver):
    settings = load_settings(
        razorpay_key_id=KEY_ID,
        razorpay_key_secret=KEY_SECRET,
        razorpay_webhook_secret=f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
        sandbox_webhook_url=receiver.url,
    ).model_copy(  # works whether or not shared/settings.py declares these yet
        update={
            "sandbox_webhook_retry_base_seconds": RETRY_BASE,
            "sandbox_webhook_max_attempts": MAX_ATTEMPTS,
            "sandbox_webhook_timeout_seconds": 2.0,
        }
    )
    async with running_sandbox(settings) as sandbox:
        yield sandbox


class FormReader(HTMLParser):
    """Collects the form action and hidden inputs, unescaped, as a browser would."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action")
        if tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"] or ""] = values.get("value") or ""


def read_form(page: str) -> FormReader:
    reader = FormReader()
    reader.feed(page)
    return reader


# ---------------------------------------------------------------- orders API


async def test_health(sandbox):
    assert await sandbox.control("GET", "/healthz") == (200, {"status": "ok"})


async def test_create_order_returns_razorpay_entity(client):
    order = await new_order(client, 123_450, receipt="rcpt-1", notes={"booking": "b1"})

    assert re.fullmatch(r"order_[A-Za-z0-9]{14}", order["id"])
    assert order["entity"] == "order"
    assert (order["amount"], order["amount_paid"], order["amount_due"]) == (123_450, 0, 123_450)
    assert (order["status"], order["attempts"], order["currency"]) == ("created", 0, "INR")
    assert order["receipt"] == "rcpt-1" and order["notes"] == {"booking": "b1"}
    assert order["offer_id"] is None and isinstance(order["created_at"], int)
    assert await sdk(client.order.fetch, order["id"]) == order


async def test_reused_receipt_is_refused_unless_unique_receipt(client, sandbox):
    first = await new_order(client, receipt="rcpt-dup")

    with pytest.raises(BadRequestError, match="Order receipt should be unique."):
        await new_order(client, receipt="rcpt-dup")
    again = await new_order(client, 99_900, receipt="rcpt-dup", unique_receipt=True)

    assert again == first  # the existing order, unchanged
    assert (await sandbox.control("GET", "/sandbox/stats"))[1]["orders_created"] == 1
    fresh = await new_order(client, receipt="rcpt-other", unique_receipt=True)
    assert fresh["id"] != first["id"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": 99}, "minimum amount"),
        ({"amount": "500"}, "must be an integer"),
        ({"amount": 500.5}, "must be an integer"),
        ({"amount": None}, "amount field is required"),
        ({"currency": "USD"}, "Currency is not supported"),
        ({"receipt": "r" * 41}, "40 characters"),
        ({"notes": {f"k{i}": "v" for i in range(16)}}, "notes"),
        ({"notes": {"k": "v" * 257}}, "256 characters"),
        ({"notes": "text"}, "notes"),
        ({"payment_capture": "maybe"}, "payment_capture"),
        ({"colour": "red"}, "colour is/are not required"),
    ],
)
async def test_invalid_order_is_a_bad_request(client, fields, message):
    with pytest.raises(BadRequestError, match=message):
        await sdk(client.order.create, {"amount": 50_000, "currency": "INR", **fields})


async def test_invalid_json_answers_razorpay_error_shape(sandbox):
    auth = {"Authorization": aiohttp.encode_basic_auth(KEY_ID, KEY_SECRET)}
    async with sandbox.http.post(sandbox.url + "/v1/orders", data=b"{nope", headers=auth) as resp:
        body = await resp.json()
    assert resp.status == 400
    assert body["error"]["code"] == "BAD_REQUEST_ERROR"
    assert set(body["error"]) >= {"description", "source", "step", "reason", "metadata"}


async def test_unknown_order_does_not_exist(client):
    with pytest.raises(BadRequestError, match="The id provided does not exist"):
        await sdk(client.order.fetch, "order_DoesNotExist01")
    with pytest.raises(BadRequestError, match="The id provided does not exist"):
        await sdk(client.payment.fetch, "pay_DoesNotExist0001")


async def test_list_orders_newest_first_with_count_skip_and_receipt(client):
    ids = [(await new_order(client, receipt=f"list-{i}"))["id"] for i in range(3)]

    page = await sdk(client.order.all, {"count": 2})
    rest = await sdk(client.order.all, {"count": 2, "skip": 2})
    by_receipt = await sdk(client.order.all, {"receipt": "list-1"})

    assert page["entity"] == "collection" and page["count"] == 2
    assert [o["id"] for o in page["items"]] == [ids[2], ids[1]]
    assert [o["id"] for o in rest["items"]] == [ids[0]]
    assert [o["id"] for o in by_receipt["items"]] == [ids[1]]
    with pytest.raises(BadRequestError, match="count"):
        await sdk(client.order.all, {"count": 101})


async def test_wrong_or_missing_api_key_is_refused(sandbox):
    wrong = razorpay.Client(auth=(KEY_ID, "not-the-secret"), base_url=sandbox.url)
    with pytest.raises(BadRequestError, match="The api key provided is invalid"):
        await sdk(wrong.order.all)

    async with sandbox.http.get(sandbox.url + "/v1/orders") as response:
        body = await response.json()
    assert response.status == 401
    assert body["error"]["code"] == "BAD_REQUEST_ERROR"


# ---------------------------------------------------------------- paying and capturing


async def test_captured_payment_has_valid_signature_and_pays_the_order(client, sandbox):
    order = await new_order(client, 75_000)

    result = await sandbox.pay(order["id"], "captured")

    assert result["razorpay_order_id"] == order["id"]
    assert re.fullmatch(r"pay_[A-Za-z0-9]{14}", result["razorpay_payment_id"])
    fields = {
        k: result[k] for k in ("razorpay_order_id", "razorpay_payment_id", "razorpay_signature")
    }
    assert client.utility.verify_payment_signature(fields) is True
    with pytest.raises(SignatureVerificationError):
        client.utility.verify_payment_signature({**fields, "razorpay_signature": "0" * 64})

    payment = await sdk(client.payment.fetch, result["razorpay_payment_id"])
    assert (payment["status"], payment["captured"], payment["amount"]) == ("captured", True, 75_000)
    assert payment["order_id"] == order["id"] and payment["error_code"] is None
    paid = await sdk(client.order.fetch, order["id"])
    assert (paid["status"], paid["amount_paid"], paid["amount_due"], paid["attempts"]) == (
        "paid",
        75_000,
        0,
        1,
    )
    payments = await sdk(client.order.payments, order["id"])
    assert payments["count"] == 1 and payments["items"][0] == payment


async def test_manual_capture_rules(client, sandbox):
    order = await new_order(client, 20_000, payment_capture=0)
    result = await sandbox.pay(order["id"], "captured")
    payment_id = result["razorpay_payment_id"]
    assert result["payment"]["status"] == "authorized"  # payment_capture=0: we capture
    assert (await sdk(client.order.fetch, order["id"]))["status"] == "attempted"

    with pytest.raises(BadRequestError, match="Capture amount must be equal"):
        await sdk(client.payment.capture, payment_id, 19_999, {"currency": "INR"})
    captured = await sdk(client.payment.capture, payment_id, 20_000, {"currency": "INR"})
    assert (captured["status"], captured["captured"]) == ("captured", True)
    assert (await sdk(client.order.fetch, order["id"]))["status"] == "paid"
    with pytest.raises(BadRequestError, match="This payment has already been captured"):
        await sdk(client.payment.capture, payment_id, 20_000, {"currency": "INR"})


async def test_failed_payment_reports_error_and_cannot_be_captured(client, sandbox):
    order = await new_order(client)

    result = await sandbox.pay(order["id"], "failed")

    assert "razorpay_signature" not in result
    error = result["error"]
    assert error["code"] == "BAD_REQUEST_ERROR" and error["reason"] == "incorrect_otp"
    payment_id = error["metadata"]["payment_id"]
    assert error["metadata"]["order_id"] == order["id"]
    payment = await sdk(client.payment.fetch, payment_id)
    assert payment["status"] == "failed" and payment["captured"] is False
    assert payment["error_description"] == "Payment processing failed because of incorrect OTP"
    assert (await sdk(client.order.fetch, order["id"]))["status"] == "attempted"
    with pytest.raises(BadRequestError, match="authorized"):
        await sdk(client.payment.capture, payment_id, order["amount"], {"currency": "INR"})


async def test_retry_after_failure_and_paying_a_paid_order(client, sandbox):
    order = await new_order(client)
    await sandbox.pay(order["id"], "failed")
    await sandbox.pay(order["id"], "captured")

    status, body = await sandbox.control("POST", f"/sandbox/orders/{order['id']}/pay", {})
    missing, _ = await sandbox.control("POST", "/sandbox/orders/order_Missing0000001/pay", {})

    assert status == 400 and body["error"]["description"] == "Order is already paid"
    assert missing == 404
    fetched = await sdk(client.order.fetch, order["id"])
    assert (fetched["attempts"], fetched["status"]) == (2, "paid")
    statuses = [p["status"] for p in (await sdk(client.order.payments, order["id"]))["items"]]
    assert statuses == ["captured", "failed"]  # newest first


# ---------------------------------------------------------------- fault injection


async def test_slow_fault_times_out_the_sdk(client, sandbox):
    order = await new_order(client)
    await sandbox.control("POST", "/sandbox/faults", {"mode": "slow", "delay_seconds": 1.0})

    with pytest.raises(requests.Timeout):
        await sdk(client.order.fetch, order["id"], timeout=0.5)


async def test_error_faults_raise_sdk_error_types_and_count_expires(client, sandbox):
    await sandbox.control("POST", "/sandbox/faults", {"mode": "error_500", "count": 2})
    for _ in range(2):
        with pytest.raises(ServerError):
            await sdk(client.order.all)
    assert (await sdk(client.order.all))["count"] == 0  # back to normal

    await sandbox.control("POST", "/sandbox/faults", {"mode": "error_502", "count": 1})
    with pytest.raises(GatewayError):
        await sdk(client.order.all)

    await sandbox.control("POST", "/sandbox/faults", {"mode": "error_400", "count": 1})
    with pytest.raises(BadRequestError):
        await sdk(client.order.all)
    assert (await sandbox.control("GET", "/sandbox/faults"))[1]["mode"] == "none"


async def test_reset_fault_closes_connection_only_under_its_prefix(client, sandbox):
    order = await new_order(client)
    await sandbox.control(
        "POST", "/sandbox/faults", {"mode": "reset", "path_prefix": "/v1/payments"}
    )

    with pytest.raises(requests.ConnectionError):
        await sdk(client.payment.fetch, "pay_Anything000001")
    assert (await sdk(client.order.fetch, order["id"]))["id"] == order["id"]
    assert (await sandbox.control("GET", "/sandbox/stats"))[1]["api_requests"] == 3


async def test_bad_fault_request_is_refused(sandbox):
    status, body = await sandbox.control("POST", "/sandbox/faults", {"mode": "explode"})
    assert status == 400 and body["error"]["field"] == "mode"
    status, _ = await sandbox.control(
        "POST", "/sandbox/faults", {"mode": "slow", "path_prefix": "/sandbox"}
    )
    assert status == 400


# ---------------------------------------------------------------- webhooks


def assert_signed(delivery: Received) -> None:
    assert delivery.headers["Content-Type"] == "application/json"
    assert hmac.compare_digest(
        delivery.headers["X-Razorpay-Signature"], webhook_signature(delivery.body)
    )


async def test_captured_payment_sends_signed_webhooks_in_order(client, sandbox, receiver):
    order = await new_order(client, 30_000)
    result = await sandbox.pay(order["id"], "captured")

    received = await receiver.wait_for(3)

    assert [r.event for r in received] == ["payment.authorized", "payment.captured", "order.paid"]
    assert len({r.event_id for r in received}) == 3
    for delivery in received:
        assert_signed(delivery)
        body = delivery.json
        assert body["entity"] == "event" and body["account_id"] == "acc_SandboxA6Pay01"
        entity = body["payload"]["payment"]["entity"]
        assert entity["id"] == result["razorpay_payment_id"]
        assert entity["order_id"] == order["id"]
    authorized, captured, paid = (r.json for r in received)
    assert authorized["contains"] == ["payment"]
    assert authorized["payload"]["payment"]["entity"]["status"] == "authorized"
    assert captured["payload"]["payment"]["entity"]["status"] == "captured"
    assert paid["contains"] == ["payment", "order"]
    assert paid["payload"]["order"]["entity"]["status"] == "paid"


async def test_failed_delivery_is_retried_with_the_same_event_id(client, sandbox, receiver):
    order = await new_order(client)
    receiver.fail_next = 1
    await sandbox.pay(order["id"], "authorized")

    first, second = await receiver.wait_for(2)

    assert first.event == second.event == "payment.authorized"
    assert first.event_id == second.event_id and first.body == second.body
    assert second.at - first.at >= RETRY_BASE * 0.9
    assert_signed(second)
    [delivery] = await sandbox.webhooks()
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == (
        "delivered",
        2,
        200,
    )


async def test_delivery_gives_up_after_max_attempts_with_backoff(client, sandbox, receiver):
    order = await new_order(client)
    receiver.fail_next = 100
    await sandbox.pay(order["id"], "failed")

    received = await receiver.wait_for(MAX_ATTEMPTS)
    for _ in range(100):
        if (await sandbox.webhooks())[0]["state"] == "failed":
            break
        await asyncio.sleep(0.02)

    [delivery] = await sandbox.webhooks()
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == (
        "failed",
        MAX_ATTEMPTS,
        500,
    )
    gaps = [b.at - a.at for a, b in zip(received, received[1:], strict=False)]
    expected = [RETRY_BASE * 2**i for i in range(MAX_ATTEMPTS - 1)]  # doubling
    assert all(gap >= wait * 0.9 for gap, wait in zip(gaps, expected, strict=True)), gaps


async def test_duplicates_share_event_id(client, sandbox, receiver):
    order = await new_order(client)
    await sandbox.pay(order["id"], "authorized", duplicate=2)

    received = await receiver.wait_for(3)
    await asyncio.sleep(0.1)

    assert len(receiver.received) == 3
    assert len({r.event_id for r in received}) == 1
    assert {r.body for r in received} == {received[0].body}


async def test_dropped_event_is_listed_and_can_be_redelivered(client, sandbox, receiver):
    order = await new_order(client)
    await sandbox.pay(order["id"], "captured", drop=["payment.captured"])

    await receiver.wait_for(2)
    await asyncio.sleep(0.1)
    assert [r.event for r in receiver.received] == ["payment.authorized", "order.paid"]

    listed = {d["event"]: d for d in await sandbox.webhooks()}
    assert listed["payment.captured"]["state"] == "dropped"
    event_id = listed["payment.captured"]["event_id"]
    status, _ = await sandbox.control("POST", "/sandbox/webhooks/redeliver", {"event_id": event_id})
    assert status == 200
    redelivered = (await receiver.wait_for(3))[2]
    assert (redelivered.event, redelivered.event_id) == ("payment.captured", event_id)
    assert_signed(redelivered)


async def test_reorder_and_disabled_webhooks(client, sandbox, receiver):
    order = await new_order(client)
    await sandbox.pay(order["id"], "captured", reorder=True)
    received = await receiver.wait_for(3)
    assert [r.event for r in received] == ["order.paid", "payment.captured", "payment.authorized"]

    receiver.received.clear()
    other = await new_order(client)
    await sandbox.pay(other["id"], "captured", enabled=False)
    await asyncio.sleep(0.2)
    assert receiver.received == []


async def test_late_authorization_sequence(client, sandbox, receiver):
    order = await new_order(client, 44_400)
    result = await sandbox.pay(order["id"], "late_authorized")

    received = await receiver.wait_for(4)

    payment_id = result["error"]["metadata"]["payment_id"]  # the customer saw a failure
    assert [r.event for r in received] == [
        "payment.failed",
        "payment.authorized",
        "payment.captured",
        "order.paid",
    ]
    entities = [r.json["payload"]["payment"]["entity"] for r in received]
    assert {e["id"] for e in entities} == {payment_id}
    assert entities[0]["status"] == "failed" and entities[0]["error_code"] == "BAD_REQUEST_ERROR"
    assert entities[1]["status"] == "authorized" and entities[1]["late_authorized"] is True
    assert entities[1]["error_code"] is None
    payment = await sdk(client.payment.fetch, payment_id)
    assert payment["status"] == "captured" and payment["late_authorized"] is True


async def test_capture_through_api_sends_captured_and_paid(client, sandbox, receiver):
    order = await new_order(client, payment_capture=0)
    result = await sandbox.pay(order["id"], "authorized")
    await receiver.wait_for(1)

    await sdk(client.payment.capture, result["razorpay_payment_id"], order["amount"])

    received = await receiver.wait_for(3)
    assert [r.event for r in received] == ["payment.authorized", "payment.captured", "order.paid"]


# ---------------------------------------------------------------- checkout page


async def test_checkout_page_escapes_everything(client, sandbox):
    order = await new_order(
        client,
        123_450,
        receipt="<script>alert(1)</script>",
        notes={"<b>k</b>": '"><img src=x onerror=alert(2)>'},
    )
    callback = 'https://shop.example/cb?a=1&b="><script>x</script>'
    params = {"order_id": order["id"], "callback_url": callback}

    async with sandbox.http.get(sandbox.url + "/checkout", params=params) as response:
        page = await response.text()

    assert response.status == 200 and response.content_type == "text/html"
    assert "1,234.50" in page
    assert "<script>alert(1)" not in page and "<img" not in page and "<b>k" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert read_form(page).fields == {"order_id": order["id"], "callback_url": callback}
    for outcome in ("captured", "authorized", "failed"):
        assert f'value="{outcome}"' in page


async def test_checkout_page_rejects_bad_callback_and_unknown_order(client, sandbox):
    order = await new_order(client)
    bad = {"order_id": order["id"], "callback_url": "javascript:alert(1)"}
    unknown = {"order_id": "<i>order_x</i>", "callback_url": "https://shop.example/cb"}

    async with sandbox.http.get(sandbox.url + "/checkout", params=bad) as response:
        assert response.status == 400
    async with sandbox.http.get(sandbox.url + "/checkout", params=unknown) as response:
        assert response.status == 404
        assert "<i>" not in await response.text()


async def test_checkout_link_without_callback_returns_to_our_callback(client, sandbox):
    """The bare link `make run` prints (`/checkout?order_id=…`) works as printed."""
    order = await new_order(client)
    async with sandbox.http.get(
        sandbox.url + "/checkout", params={"order_id": order["id"]}
    ) as response:
        assert response.status == 200
        page = await response.text()
    default = load_settings().sandbox_callback_url
    assert default == "http://127.0.0.1:8080/api/razorpay/callback"
    assert read_form(page).fields == {"order_id": order["id"], "callback_url": default}


async def test_checkout_success_posts_signed_fields_to_callback(client, sandbox):
    order = await new_order(client)
    callback = "https://shop.example/payment/success?x=1&y=2"
    form = {"order_id": order["id"], "callback_url": callback, "outcome": "captured"}

    async with sandbox.http.post(sandbox.url + "/checkout/pay", data=form) as response:
        page = await response.text()

    assert response.status == 200
    posted = read_form(page)
    assert posted.action == callback
    assert set(posted.fields) == {"razorpay_payment_id", "razorpay_order_id", "razorpay_signature"}
    assert posted.fields["razorpay_order_id"] == order["id"]
    assert client.utility.verify_payment_signature(posted.fields) is True
    assert "submit()" in page
    assert (await sdk(client.order.fetch, order["id"]))["status"] == "paid"


async def test_checkout_failure_posts_error_fields(client, sandbox):
    order = await new_order(client)
    form = {"order_id": order["id"], "callback_url": "http://127.0.0.1:1/fail", "outcome": "failed"}

    async with sandbox.http.post(sandbox.url + "/checkout/pay", data=form) as response:
        posted = read_form(await response.text())

    assert set(posted.fields) == {
        "error[code]",
        "error[description]",
        "error[source]",
        "error[step]",
        "error[reason]",
        "error[metadata]",
    }
    assert posted.fields["error[code]"] == "BAD_REQUEST_ERROR"
    metadata = json.loads(posted.fields["error[metadata]"])
    assert metadata["order_id"] == order["id"]
    payment = await sdk(client.payment.fetch, metadata["payment_id"])
    assert payment["status"] == "failed"

    form["callback_url"] = "ftp://shop.example/cb"
    async with sandbox.http.post(sandbox.url + "/checkout/pay", data=form) as response:
        assert response.status == 400


# ---------------------------------------------------------------- controls


async def test_stats_and_reset(client, sandbox, receiver):
    order = await new_order(client)
    await sandbox.pay(order["id"], "authorized")
    await receiver.wait_for(1)

    _, stats = await sandbox.control("GET", "/sandbox/stats")
    assert stats == {"orders_created": 1, "payments": 1, "refunds": 0, "api_requests": 1}

    await sandbox.control("POST", "/sandbox/reset")
    _, stats = await sandbox.control("GET", "/sandbox/stats")
    assert stats == {"orders_created": 0, "payments": 0, "refunds": 0, "api_requests": 0}
    assert await sandbox.webhooks() == []
    with pytest.raises(BadRequestError):
        await sdk(client.order.fetch, order["id"])
