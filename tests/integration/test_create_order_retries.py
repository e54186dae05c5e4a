"""A create whose answer was lost is retried safely: the receipt finds the order Razorpay
made, with or without Razorpay honouring `unique_receipt`."""

from datetime import timedelta

import pytest

from order_service import handlers as orders
from shared.razorpay_client import RazorpayClient
from testkit.factories import make_booking
from testkit.inprocess import running_sandbox
from tests.support.orders import lost_answer


async def create(pool, razorpay, booking):
    return await orders.create_order(
        pool, razorpay, booking_id=booking["booking_id"], customer_id=booking["customer_id"],
        amount_paise=booking["amount_paise"], reconcile_after=timedelta(hours=1))


@pytest.mark.parametrize("supported", [True, False])
async def test_retry_after_a_lost_answer_adopts_the_same_order(pool, base_settings, supported):
    async with running_sandbox(base_settings,
                               sandbox_unique_receipt_supported=supported) as settings:
        booking, razorpay, made = await lost_answer(pool, settings)
        order = await create(pool, razorpay, booking)
        assert order.order_id == made["id"]
        found = await razorpay.find_order_by_receipt(made["receipt"])
        assert found["id"] == made["id"]
        listed = await razorpay._call("list_orders", razorpay._client.order.all, {"count": 100})
        assert sum(o["receipt"] == made["receipt"] for o in listed["items"]) == 1


@pytest.mark.parametrize("supported", [True, False])
async def test_a_lost_answer_then_a_new_price_gets_an_order_at_the_new_price(
        pool, base_settings, supported):
    """The order the lost create made is for the old price, and nobody ever saw its id:
    after a price change the booking gets an order at its current price, not the old
    order's receipt again (refused as not this booking's, on every retry)."""
    async with running_sandbox(base_settings,
                               sandbox_unique_receipt_supported=supported) as settings:
        booking, razorpay, made = await lost_answer(pool, settings)
        repriced = {**booking, "amount_paise": booking["amount_paise"] + 30_000}
        await pool.execute("UPDATE bookings SET amount_paise = $2 WHERE id = $1",
                           booking["booking_id"], repriced["amount_paise"])
        order = await create(pool, razorpay, repriced)
        assert order.order_id != made["id"]
        assert order.amount_paise == repriced["amount_paise"]
        assert (await create(pool, razorpay, repriced)).order_id == order.order_id
        receipt = await pool.fetchval("SELECT receipt FROM payments"
                                      " WHERE razorpay_order_id = $1", order.order_id)
        at_razorpay = await razorpay.find_order_by_receipt(receipt)
        assert (at_razorpay["id"], at_razorpay["amount"]) == (
            order.order_id, repriced["amount_paise"])


async def test_an_api_without_unique_receipt_still_creates_orders(pool, base_settings):
    async with running_sandbox(base_settings,
                               sandbox_unique_receipt_supported=False) as settings:
        booking = await make_booking(pool)
        order = await create(pool, RazorpayClient(settings), booking)
        assert order.order_id.startswith("order_")


async def test_a_refused_api_key_is_a_502_and_writes_nothing(pool, base_settings):
    from shared.http import HttpError

    async with running_sandbox(base_settings) as settings:
        wrong = settings.model_copy(update={"razorpay_key_secret": "not-the-secret"})
        booking = await make_booking(pool)
        with pytest.raises(HttpError) as refused:
            await create(pool, RazorpayClient(wrong), booking)
        assert refused.value.status == 502
        assert await pool.fetchval("SELECT count(*) FROM payments WHERE booking_id = $1",
                                   booking["booking_id"]) == 0
