"""The sandbox's refund API, driven through the official razorpay SDK as our services do."""

from __future__ import annotations

import pytest
import pytest_asyncio
from razorpay.errors import BadRequestError

from shared.settings import load_settings
from tests.support.sandbox import (
    KEY_ID,
    KEY_SECRET,
    WEBHOOK_SECRET,
    new_order,
    running_sandbox,
    sdk,
    webhook_signature,
)


@pytest_asyncio.fixture(scope="module")
async def sandbox(receiver):
    settings = load_settings(
        razorpay_key_id=KEY_ID,
        razorpay_key_secret=KEY_SECRET,
        razorpay_webhook_secret=WEBHOOK_SECRET,
        sandbox_webhook_url=receiver.url,
        sandbox_webhook_retry_base_seconds=0.05,
        sandbox_refund_delay_seconds=0.2,
    )
    async with running_sandbox(settings) as sandbox:
        yield sandbox


async def captured_payment(client, sandbox, amount: int = 50_000) -> str:
    order = await new_order(client, amount)
    return (await sandbox.pay(order["id"]))["razorpay_payment_id"]


async def test_partial_then_full_refund_with_entity_shapes(client, sandbox):
    payment_id = await captured_payment(client, sandbox)

    first = await sdk(client.payment.refund, payment_id,
                      {"amount": 20_000, "notes": {"a6_refund_id": "7"}, "receipt": "a6-rf7"})
    assert first["entity"] == "refund" and first["id"].startswith("rfnd_")
    assert (first["amount"], first["status"]) == (20_000, "pending")
    assert first["payment_id"] == payment_id
    assert first["notes"] == {"a6_refund_id": "7"} and first["receipt"] == "a6-rf7"
    payment = await sdk(client.payment.fetch, payment_id)
    assert (payment["status"], payment["amount_refunded"], payment["refund_status"]) == (
        "captured", 20_000, "partial")

    rest = await sdk(client.payment.refund, payment_id, {})  # no amount: all that remains
    assert rest["amount"] == 30_000
    payment = await sdk(client.payment.fetch, payment_id)
    assert (payment["status"], payment["refund_status"]) == ("refunded", "full")
    listed = await sdk(client.payment.fetch_multiple_refund, payment_id, {})
    assert [r["id"] for r in listed["items"]] == [rest["id"], first["id"]]
    assert await sdk(client.refund.fetch, first["id"]) == {**first, "status": first["status"]}


@pytest.mark.parametrize(
    ("amount", "message"),
    [(50_001, "The refund amount provided is greater than amount captured"),
     (99, "atleast INR 1.00")],
)
async def test_refusals_have_razorpay_messages(client, sandbox, amount, message):
    payment_id = await captured_payment(client, sandbox)
    with pytest.raises(BadRequestError, match=message):
        await sdk(client.payment.refund, payment_id, {"amount": amount})


async def test_refund_of_a_fully_refunded_or_uncaptured_payment_is_refused(client, sandbox):
    payment_id = await captured_payment(client, sandbox)
    await sdk(client.payment.refund, payment_id, {})
    with pytest.raises(BadRequestError, match="fully refunded"):
        await sdk(client.payment.refund, payment_id, {"amount": 100})
    order = await new_order(client)
    failed = (await sandbox.pay(order["id"], "failed"))["payment"]["id"]
    with pytest.raises(BadRequestError, match="not been captured"):
        await sdk(client.payment.refund, failed, {})


async def test_pending_refund_is_processed_later_with_signed_webhooks(client, sandbox, receiver):
    payment_id = await captured_payment(client, sandbox)
    await receiver.wait_for(3)  # the payment's own webhooks
    receiver.received.clear()

    refund = await sdk(client.payment.refund, payment_id, {"amount": 10_000})
    received = await receiver.wait_for(2)

    assert [r.event for r in received] == ["refund.created", "refund.processed"]
    for delivery in received:
        assert delivery.headers["X-Razorpay-Signature"] == webhook_signature(delivery.body)
        assert delivery.json["contains"] == ["refund", "payment"]
        assert delivery.json["payload"]["refund"]["entity"]["id"] == refund["id"]
    assert received[1].json["payload"]["refund"]["entity"]["status"] == "processed"
    assert (await sdk(client.refund.fetch, refund["id"]))["status"] == "processed"


async def test_a_failed_refund_gives_the_amount_back(client, sandbox, receiver):
    status, _ = await sandbox.control("POST", "/sandbox/refunds", {"outcome": "failed"})
    assert status == 200
    payment_id = await captured_payment(client, sandbox)
    await receiver.wait_for(3)
    receiver.received.clear()

    refund = await sdk(client.payment.refund, payment_id, {})
    received = await receiver.wait_for(2)

    assert [r.event for r in received] == ["refund.created", "refund.failed"]
    assert (await sdk(client.refund.fetch, refund["id"]))["status"] == "failed"
    payment = await sdk(client.payment.fetch, payment_id)
    assert (payment["status"], payment["amount_refunded"]) == ("captured", 0)
