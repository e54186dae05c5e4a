"""create-order and payment-status through the gateway, against the real processes."""

import asyncio

import pytest

from shared.settings import load_settings
from testkit.api_client import call, create_order, payment_status, sandbox_stats, set_fault
from testkit.factories import make_booking
from tests.support.sandbox import sdk, sdk_client

pytestmark = pytest.mark.e2e


async def test_create_order_matches_the_seed(stack, http, pool):
    booking = await make_booking(pool, 150_000)
    status, body, headers = await create_order(http, stack, booking)
    assert status == 200, body
    assert body["message"] == "Order created successfully"
    assert body["order_id"].startswith("order_")
    assert body["amount"] == 1500.0 and body["currency"] == "INR"
    assert body["booking_id"] == booking["booking_id"]
    assert body["customer_name"] == "John Doe" and body["customer_email"].endswith("@example.com")
    assert headers.get("X-Request-Id")
    # the Razorpay order carries paise, the receipt and the notes
    razorpay = sdk_client(load_settings(razorpay_base_url=stack.sandbox))
    order = await sdk(razorpay.order.fetch, body["order_id"])
    assert order["amount"] == 150_000
    assert order["notes"] == {"booking_id": str(booking["booking_id"]),
                              "customer_id": str(booking["customer_id"])}
    assert order["receipt"].startswith(f"a6-bk{booking['booking_id']}-")
    status, body, _ = await payment_status(http, stack, booking["booking_id"])
    assert (status, body) == (200, {"status": "pending", "paid": False,
                                    "razorpay_payment_id": None})


async def test_same_booking_twice_returns_the_same_order(stack, http, pool):
    booking = await make_booking(pool)
    first = await create_order(http, stack, booking)
    second = await create_order(http, stack, booking)
    assert first[0] == second[0] == 200
    assert first[1]["order_id"] == second[1]["order_id"]


async def test_twenty_racing_creates_make_one_razorpay_order(stack, http, pool):
    booking = await make_booking(pool)
    before = (await sandbox_stats(http, stack))["orders_created"]
    results = await asyncio.gather(*(create_order(http, stack, booking) for _ in range(20)))
    assert {r[0] for r in results} == {200}
    assert len({r[1]["order_id"] for r in results}) == 1
    assert (await sandbox_stats(http, stack))["orders_created"] == before + 1
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM payments WHERE booking_id = $1", booking["booking_id"]) == 1
        events = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE routing_key = 'order.created'"
            " AND (body->'data'->>'booking_id')::bigint = $1", booking["booking_id"])
    assert events == 1


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"amount": 1499.99}, "Amount does not match the booking amount."),
        ({"amount": 1500.001}, None),
        ({"amount": -1500}, None),
        ({"amount": 0}, None),
        ({"amount": "1500.00"}, None),
        ({"amount": True}, None),
        ({"booking_id": "abc"}, None),
        ({"booking_id": 1.5}, None),
        ({"customer_id": -3}, None),
        ({"booking_id": 10**30}, None),
    ],
)
async def test_bad_amounts_and_types_are_400_and_create_nothing(
    stack, http, pool, overrides, message
):
    booking = await make_booking(pool)
    before = (await sandbox_stats(http, stack))["orders_created"]
    status, body, _ = await create_order(http, stack, booking, **overrides)
    assert status == 400, body
    assert isinstance(body["message"], str) and body["message"]
    if message:
        assert body["message"] == message
    assert (await sandbox_stats(http, stack))["orders_created"] == before


@pytest.mark.parametrize("drop", ["booking_id", "customer_id", "amount"])
async def test_missing_fields_get_the_seed_message(stack, http, pool, drop):
    booking = await make_booking(pool)
    body = {"booking_id": booking["booking_id"], "customer_id": booking["customer_id"],
            "amount": booking["amount"]}
    del body[drop]
    status, answer, _ = await call(http, "POST", f"{stack.gateway}/api/razorpay/create-order",
                                   json=body)
    assert (status, answer) == (
        400, {"message": "Missing required fields: booking_id, customer_id, amount"})


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,2]", b"null", b'"x"', b"\xff\xfe"])
async def test_malformed_bodies_are_400_json(stack, http, raw):
    status, body, _ = await call(http, "POST", f"{stack.gateway}/api/razorpay/create-order",
                                 data=raw, headers={"Content-Type": "application/json"})
    assert status == 400 and isinstance(body, dict) and body["message"]


async def test_someone_elses_booking_is_404(stack, http, pool):
    mine, theirs = await make_booking(pool), await make_booking(pool)
    status, body, _ = await create_order(http, stack, mine, customer_id=theirs["customer_id"])
    assert (status, body) == (404, {"message":
                                    "Booking not found or does not belong to this customer."})
    status, body, _ = await create_order(http, stack, mine, booking_id=10**12)
    assert status == 404


async def test_payment_status_unknown_and_invalid(stack, http):
    assert (await payment_status(http, stack, 10**12))[:2] == (404,
                                                               {"message": "Payment not found"})
    status, body, _ = await payment_status(http, stack, "abc")
    assert status == 400 and body["message"]


@pytest.mark.parametrize(
    "fault,expected",
    [({"mode": "error_500"}, 503), ({"mode": "error_502"}, 503),
     ({"mode": "slow", "delay_seconds": 4}, 504), ({"mode": "reset"}, 503)],
)
async def test_razorpay_failure_is_a_clear_5xx_and_leaves_nothing(
    stack, http, pool, fault, expected
):
    booking = await make_booking(pool)
    await set_fault(http, stack, path_prefix="/v1/orders", count=1, **fault)
    status, body, _ = await create_order(http, stack, booking)
    assert status == expected, body
    assert body["message"]
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM payments WHERE booking_id = $1", booking["booking_id"]) == 0
    if fault["mode"] == "slow":
        await asyncio.sleep(fault["delay_seconds"])  # let the slow create finish at Razorpay
    status, body, _ = await create_order(http, stack, booking)  # Razorpay is back
    assert status == 200, body
    again = await create_order(http, stack, booking)
    assert again[1]["order_id"] == body["order_id"]


async def test_order_created_event_reaches_the_broker_exactly_once(stack, http, pool):
    booking = await make_booking(pool)
    status, body, _ = await create_order(http, stack, booking)
    assert status == 200

    async def published():
        async with pool.acquire() as conn:
            return await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE routing_key = 'order.created'"
                " AND body->'data'->>'order_id' = $1 AND published_at IS NOT NULL",
                body["order_id"])

    from testkit.infra import eventually
    assert await eventually(published) == 1

    async def consumed():
        async with pool.acquire() as conn:
            return await conn.fetchval(
                "SELECT count(*) FROM inbox i JOIN outbox o ON o.id = i.event_id"
                " WHERE o.body->'data'->>'order_id' = $1", body["order_id"])

    assert await eventually(consumed) == 1


async def test_a_slow_razorpay_stalls_only_create_order(stack, http, pool):
    bookings = [await make_booking(pool) for _ in range(12)]
    paid = await make_booking(pool)
    assert (await create_order(http, stack, paid))[0] == 200
    await set_fault(http, stack, mode="slow", delay_seconds=1.5, path_prefix="/v1/orders",
                    count=12)
    creates = [asyncio.create_task(create_order(http, stack, b)) for b in bookings]
    await asyncio.sleep(0.5)  # every create is now waiting on Razorpay or on a connection
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, _ = await payment_status(http, stack, paid["booking_id"])
    assert status == 200 and loop.time() - started < 0.5
    results = await asyncio.gather(*creates)
    assert [r[0] for r in results] == [200] * 12


async def test_payment_status_refuses_absurdly_long_ids(stack, http):
    status, body, _ = await payment_status(http, stack, "9" * 4301)
    assert status == 400 and body["message"]
