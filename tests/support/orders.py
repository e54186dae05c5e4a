"""Orders and payments made at an in-process sandbox through our own Razorpay client: the
starting points of the create-order and verify tests."""

from __future__ import annotations

from datetime import timedelta

import aiohttp

from order_service import handlers as orders
from shared.razorpay_client import OrderRequest, RazorpayClient
from testkit.factories import make_booking


async def authorized_payment(pool, settings, outcome: str = "authorized"):
    """A booking, its order, and a payment on it at the sandbox (`outcome`)."""
    booking = await make_booking(pool)
    razorpay = RazorpayClient(settings)
    order = await orders.create_order(
        pool, razorpay, booking_id=booking["booking_id"], customer_id=booking["customer_id"],
        amount_paise=booking["amount_paise"], reconcile_after=timedelta(hours=1))
    return booking, razorpay, await pay(settings, order.order_id, outcome)


async def pay(settings, order_id: str, outcome: str = "authorized") -> dict:
    """A payment on the order at the sandbox (`outcome`), no webhooks: checkout's three
    `razorpay_*` fields."""
    async with aiohttp.ClientSession() as http, http.post(
        f"{settings.razorpay_base_url}/sandbox/orders/{order_id}/pay",
        json={"outcome": outcome, "webhooks": {"enabled": False}},
    ) as resp:
        return await resp.json()


async def lost_answer(pool, settings):
    """The state after a create that reached Razorpay but whose answer never came back:
    an order with the booking's receipt at Razorpay, nothing in our database."""
    booking = await make_booking(pool)
    row = await pool.fetchrow("SELECT * FROM bookings WHERE id = $1", booking["booking_id"])
    razorpay = RazorpayClient(settings)
    made = await razorpay.create_order(OrderRequest(
        amount_paise=booking["amount_paise"], receipt=orders.receipt_for(row),
        notes={"booking_id": str(booking["booking_id"])}, unique_receipt=False))
    return booking, razorpay, made
