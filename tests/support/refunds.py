"""Bookings with an order, and paid, at the in-process sandbox through our own client, and
the sandbox's control API: where the refund, dispute and settlement tests start."""

from __future__ import annotations

from datetime import timedelta

import aiohttp

from order_service import handlers as orders
from shared.payments import record_outcome
from shared.razorpay_map import best_outcome
from testkit.factories import make_booking


async def control(settings, path: str, body: dict) -> dict:
    async with aiohttp.ClientSession() as http, http.post(
        f"{settings.razorpay_base_url}{path}", json=body
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def open_order(pool, razorpay, amount_paise=150_000):
    booking = await make_booking(pool, amount_paise)
    order = await orders.create_order(
        pool, razorpay, booking_id=booking["booking_id"], customer_id=booking["customer_id"],
        amount_paise=amount_paise, reconcile_after=timedelta(hours=1))
    return booking["booking_id"], order.order_id


async def pay_and_record(pool, razorpay, settings, order_id) -> None:
    await control(settings, f"/sandbox/orders/{order_id}/pay",
                  {"outcome": "captured", "webhooks": {"enabled": False}})
    outcome = best_outcome(await razorpay.fetch_order_payments(order_id))
    async with pool.acquire() as conn, conn.transaction():
        assert (await record_outcome(conn, outcome, "verify", None)).applied


async def paid_booking(pool, razorpay, settings, amount_paise=150_000) -> int:
    booking_id, order_id = await open_order(pool, razorpay, amount_paise)
    await pay_and_record(pool, razorpay, settings, order_id)
    return booking_id
