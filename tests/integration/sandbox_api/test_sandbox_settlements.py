"""The sandbox's settlements API, driven through the official razorpay SDK: a settlement of
what is captured and refunded (2% + 18% GST), its recon items with Razorpay's paging and
errors, a short one, the month control, and `settlement.processed` signed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import pytest_asyncio
import razorpay
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

NOON = int(datetime(2026, 3, 4, 12, tzinfo=UTC).timestamp())


@pytest_asyncio.fixture(scope="module")
async def sandbox(receiver):
    settings = load_settings(
        razorpay_key_id=KEY_ID, razorpay_key_secret=KEY_SECRET,
        razorpay_webhook_secret=WEBHOOK_SECRET, sandbox_webhook_url=receiver.url,
        sandbox_webhook_retry_base_seconds=0.05, sandbox_refund_delay_seconds=0.05)
    async with running_sandbox(settings) as sandbox:
        yield sandbox


async def captured(client, sandbox, amount: int) -> str:
    order = await new_order(client, amount)
    return (await sandbox.pay(order["id"], enabled=False))["razorpay_payment_id"]


async def settle(sandbox, **body) -> dict:
    status, answer = await sandbox.control("POST", "/sandbox/settlements", body)
    assert status == 200, answer
    return answer


async def test_a_settlement_of_payments_and_a_refund_is_sent_signed(client, sandbox, receiver):
    first, second = await captured(client, sandbox, 100_000), await captured(client, sandbox,
                                                                               50_000)
    refund = await sdk(client.payment.refund, first, {"amount": 30_000})
    received = await receiver.wait_for(2)
    assert [r.event for r in received] == ["refund.created", "refund.processed"]
    receiver.received.clear()

    made = (await settle(sandbox, at=NOON))["settlement"]
    # a normal settlement, as Razorpay's: its own fees are 0, each item carries its fee
    assert (made["fees"], made["tax"]) == (0, 0)
    assert made["amount"] == 100_000 - 2_360 + 50_000 - 1_180 - 30_000
    (delivery,) = await receiver.wait_for(1)
    assert delivery.event == "settlement.processed"
    assert delivery.headers["X-Razorpay-Signature"] == webhook_signature(delivery.body)
    assert delivery.json["payload"]["settlement"]["entity"] == made

    assert await sdk(client.settlement.fetch, made["id"]) == made
    listed = await sdk(client.settlement.all, {"from": NOON - 1})
    assert [s["id"] for s in listed["items"]] == [made["id"]]
    recon = await sdk(client.settlement.report, {"year": 2026, "month": 3, "day": 4})
    items = {i["entity_id"]: i for i in recon["items"]}
    assert set(items) == {first, second, refund["id"]}
    # fee 2% + 18% GST on it: ₹20 + ₹3.60 on ₹1000, ₹10 + ₹1.80 on ₹500
    assert (items[first]["credit"], items[first]["fee"], items[first]["tax"]) == (
        97_640, 2_360, 360)
    assert (items[second]["fee"], items[second]["tax"]) == (1_180, 180)
    assert (items[refund["id"]]["type"], items[refund["id"]]["debit"]) == ("refund", 30_000)
    assert {i["settlement_id"] for i in items.values()} == {made["id"]}
    assert sum(i["credit"] - i["debit"] for i in items.values()) == made["amount"]
    payment = await sdk(client.payment.fetch, first)
    assert (payment["fee"], payment["tax"]) == (2_360, 360)  # as the settlement charged

    assert (await settle(sandbox))["settlement"] is None  # nothing left to settle


async def test_short_settlement_and_a_lost_dispute(client, sandbox):
    payment = await captured(client, sandbox, 100_000)
    made = await settle(sandbox, at=NOON, short_by=500, webhook=False, adjustments=[
        {"amount": -100_000, "dispute_id": "disp_Lost0000000001", "payment_id": payment}])
    recon = await sdk(client.settlement.report, {"year": 2026, "month": 3, "day": 4})
    net = sum(i["credit"] - i["debit"] for i in recon["items"])
    assert net - made["settlement"]["amount"] == 500
    (dispute,) = [i for i in recon["items"] if i["type"] == "adjustment"]
    assert (dispute["dispute_id"], dispute["debit"], dispute["payment_id"]) == (
        "disp_Lost0000000001", 100_000, payment)


async def test_recon_pages_with_count_and_skip_across_a_month(client, sandbox):
    status, answer = await sandbox.control("POST", "/sandbox/settlements/month", {
        "prefix": "T", "per_day": 1_500, "days": 2, "amount": 150_000,
        "first_day_at": NOON})
    assert status == 200 and len(answer["settlements"]) == 2
    seen = []
    for skip in range(0, 1_600, 1_000):
        page = await sdk(client.settlement.report,
                         {"year": 2026, "month": 3, "day": 4, "count": 1_000, "skip": skip})
        seen += [i["entity_id"] for i in page["items"]]
    assert seen == [f"pay_T{n:09d}" for n in range(1, 1_501)]
    month = await sdk(client.settlement.report,
                      {"year": 2026, "month": 3, "count": 10, "skip": 1_495})
    assert [i["entity_id"] for i in month["items"]] == [
        f"pay_T{n:09d}" for n in range(1_496, 1_506)]


@pytest.mark.parametrize(("query", "message"), [
    ({"year": 2026, "month": 13}, "The month is not a valid month."),
    ({"year": 26, "month": 1}, "The year must be 4 digits."),
    ({"year": 2026, "month": 1, "day": 32}, "The day must be between 1 and 2 digits."),
    ({"year": 2026, "month": 1, "count": 0}, "The count must be at least 1."),
    ({"year": 2026, "month": 1, "count": 1001}, "The count may not be greater than 1000."),
    ({"month": 1}, "The year field is required."),
])
async def test_recon_refusals_are_razorpays(client, query, message):
    with pytest.raises(BadRequestError, match=message):
        await sdk(client.settlement.report, query)


async def test_list_and_fetch_refusals(client):
    with pytest.raises(BadRequestError, match="from must be between"):
        await sdk(client.settlement.all, {"from": 5})
    with pytest.raises(BadRequestError, match="The count must be at least 1."):
        await sdk(client.settlement.all, {"count": 0})
    with pytest.raises(BadRequestError, match="does not exist"):
        await sdk(client.settlement.fetch, "setl_Nope0000000000")


async def test_the_settlement_clock_settles_what_is_due(sandbox, receiver):
    """SANDBOX_SETTLE_EVERY: a second sandbox on a short clock settles a payment unasked."""
    settings = sandbox.settings.model_copy(update={"sandbox_settle_every": 0.1})
    async with running_sandbox(settings) as ticking:
        clock_client = razorpay.Client(auth=(KEY_ID, KEY_SECRET), base_url=ticking.url)
        payment = await captured(clock_client, ticking, 100_000)
        deliveries = await receiver.wait_for(1)
        while not any(d.event == "settlement.processed" for d in deliveries):
            deliveries = await receiver.wait_for(len(deliveries) + 1)
        (settled,) = [d for d in deliveries if d.event == "settlement.processed"]
        setl = settled.json["payload"]["settlement"]["entity"]
        assert setl["amount"] == 100_000 - 2_360
        day = datetime.fromtimestamp(setl["created_at"], UTC)
        recon = await sdk(clock_client.settlement.report,
                          {"year": day.year, "month": day.month, "day": day.day})
        assert [i["entity_id"] for i in recon["items"]] == [payment]
