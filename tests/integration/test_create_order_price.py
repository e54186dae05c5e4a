"""After a booking's price changes, create-order never hands back the open order made for
the old amount: the customer pays the booking's current amount, or nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from order_service import handlers as orders
from shared.http import HttpError
from shared.razorpay_client import RazorpayClient
from testkit.factories import make_booking
from testkit.inprocess import running_sandbox
from tests.support.sandbox import sdk, sdk_client


async def create(pool, razorpay, booking, amount_paise):
    return await orders.create_order(
        pool, razorpay, booking_id=booking["booking_id"], customer_id=booking["customer_id"],
        amount_paise=amount_paise, reconcile_after=timedelta(hours=1))


async def reprice(pool, booking, amount_paise: int) -> None:
    await pool.execute("UPDATE bookings SET amount_paise = $2 WHERE id = $1",
                       booking["booking_id"], amount_paise)


async def test_an_open_order_for_an_old_price_is_not_reused(pool, base_settings):
    async with running_sandbox(base_settings) as settings:
        razorpay = RazorpayClient(settings)
        booking = await make_booking(pool, 150_000)
        old = await create(pool, razorpay, booking, 150_000)
        await reprice(pool, booking, 180_000)
        with pytest.raises(HttpError) as stale:
            await create(pool, razorpay, booking, 150_000)
        assert stale.value.status == 400

        new = await create(pool, razorpay, booking, 180_000)
        assert new.order_id != old.order_id and new.amount_paise == 180_000
        at_razorpay = await sdk(sdk_client(settings).order.fetch, new.order_id)
        assert at_razorpay["amount"] == 180_000
        # asked again, the new order is the open one
        assert (await create(pool, razorpay, booking, 180_000)).order_id == new.order_id
        superseded = await pool.fetchval(
            "SELECT superseded_at IS NOT NULL FROM payments WHERE razorpay_order_id = $1",
            old.order_id)
        assert superseded


async def test_an_old_price_order_already_authorized_is_refused_not_replaced(pool, base_settings):
    async with running_sandbox(base_settings) as settings:
        razorpay = RazorpayClient(settings)
        booking = await make_booking(pool, 150_000)
        old = await create(pool, razorpay, booking, 150_000)
        await pool.execute("UPDATE payments SET status = 'authorized' WHERE razorpay_order_id = $1",
                           old.order_id)
        await reprice(pool, booking, 180_000)
        with pytest.raises(HttpError) as refused:
            await create(pool, razorpay, booking, 180_000)
        assert refused.value.status == 409
        assert await pool.fetchval("SELECT count(*) FROM payments WHERE booking_id = $1",
                                   booking["booking_id"]) == 1
