"""A booking repriced while its order is open: the A6 Cars site writes the new amount and
nobody asks create-order again before the customer pays the old order (a Checkout left
open). The old order is superseded by the price change itself, so that payment is refunded,
never taken as paying the booking at the old price."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from order_service import handlers as orders
from razorpay_sandbox.checkout import payment_signature
from shared.http import HttpError
from tests.support.refunds import control, open_order
from tests.support.webhooks import apply_webhook
from verification_service.handlers import VerifyRequest, verify_payment


async def repriced_and_paid_at_the_old_price(pool, razorpay, settings, new_amount: int) -> dict:
    booking_id, order_id = await open_order(pool, razorpay, 150_000)
    await pool.execute("UPDATE bookings SET amount_paise = $2 WHERE id = $1", booking_id,
                       new_amount)
    paid = await control(settings, f"/sandbox/orders/{order_id}/pay",
                         {"webhooks": {"enabled": False}})
    customer_id = await pool.fetchval("SELECT customer_id FROM bookings WHERE id = $1",
                                      booking_id)
    return {"booking_id": booking_id, "customer_id": customer_id, "order_id": order_id,
            "payment_id": paid["razorpay_payment_id"]}


async def assert_refunded_and_unpaid(pool, razorpay, paid: dict) -> None:
    assert await pool.fetch(
        "SELECT r.cause, r.amount_paise FROM refunds r JOIN duplicate_payments d"
        " ON d.id = r.duplicate_payment_id WHERE d.razorpay_payment_id = $1",
        paid["payment_id"]) == [("duplicate_payment", 150_000)]
    status = await orders.payment_status(orders.status_reads(pool), paid["booking_id"])
    assert status["paid"] is False
    assert await pool.fetchval("SELECT status FROM bookings WHERE id = $1",
                               paid["booking_id"]) == "pending"


@pytest.mark.parametrize("new_amount", [180_000, 120_000], ids=["raised", "lowered"])
async def test_a_payment_verified_on_an_order_the_price_left_behind_is_refunded(
        pool, razorpay, settings, new_amount):
    paid = await repriced_and_paid_at_the_old_price(pool, razorpay, settings, new_amount)
    request = VerifyRequest(
        paid["order_id"], paid["payment_id"],
        payment_signature(paid["order_id"], paid["payment_id"], settings.razorpay_key_secret),
        paid["booking_id"], paid["customer_id"])
    with pytest.raises(HttpError) as refused:
        await verify_payment(pool, razorpay, settings, request)
    assert (refused.value.status, refused.value.code) == (409, "order_superseded")
    await assert_refunded_and_unpaid(pool, razorpay, paid)

    # the customer is asked again: a new order at the current price
    order = await orders.create_order(
        pool, razorpay, booking_id=paid["booking_id"], customer_id=paid["customer_id"],
        amount_paise=new_amount, reconcile_after=timedelta(hours=1))
    assert order.order_id != paid["order_id"]


async def test_a_capture_reported_on_an_order_the_price_left_behind_is_refunded(
        pool, razorpay, settings):
    paid = await repriced_and_paid_at_the_old_price(pool, razorpay, settings, 180_000)
    delivery = {"entity": "event", "event": "payment.captured", "created_at": int(time.time()),
                "payload": {"payment": {"entity": await razorpay.fetch_payment(
                    paid["payment_id"])}}}
    assert await apply_webhook(pool, "id:" + uuid.uuid4().hex, delivery) == "conflict"
    await assert_refunded_and_unpaid(pool, razorpay, paid)


async def test_an_unchanged_price_leaves_the_open_order_payable(pool, razorpay, settings):
    booking_id, order_id = await open_order(pool, razorpay, 150_000)
    await pool.execute("UPDATE bookings SET amount_paise = amount_paise WHERE id = $1",
                       booking_id)
    assert await pool.fetchval("SELECT superseded_at FROM payments WHERE razorpay_order_id = $1",
                               order_id) is None
