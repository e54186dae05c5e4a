"""A booking cancelled while verify waits on Razorpay gets 409 booking_cancelled and no
passes; `issue_passes` draws none for a booking that is not paid and live; and with
CAPTURE_ON_VERIFY an authorized payment of a cancelled booking, or on an order made for an
earlier price, stays uncaptured (Razorpay releases it), the reason on its row, never
captured and then refunded at a fee."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import pytest

from order_service import reconciler
from shared.http import HttpError
from shared.pass_store import BookingNotPaid, issue_passes
from shared.payment_state import PaymentOutcome, PaymentStatus
from testkit.api_client import set_fault
from testkit.factories import make_booking
from testkit.inprocess import running_sandbox
from tests.support.orders import authorized_payment
from verification_service import handlers as verification
from webhook_service import handlers as webhooks


async def paid_at_razorpay(pool, settings, outcome: str):
    booking, razorpay, checkout = await authorized_payment(pool, settings, outcome)
    request = verification.VerifyRequest(
        checkout["razorpay_order_id"], checkout["razorpay_payment_id"],
        checkout["razorpay_signature"], booking["booking_id"], booking["customer_id"])
    return booking, razorpay, request


async def cancel(pool, booking) -> None:
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       booking["booking_id"])


async def live_passes(pool, booking) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM passes WHERE booking_id = $1 AND revoked_at IS NULL",
        booking["booking_id"])


async def test_a_cancel_while_verify_fetches_the_payment_gets_409_and_no_passes(
        pool, base_settings):
    async with running_sandbox(base_settings) as settings:
        booking, razorpay, request = await paid_at_razorpay(pool, settings, "captured")
        async with aiohttp.ClientSession() as http:
            await set_fault(http, SimpleNamespace(sandbox=settings.razorpay_base_url),
                            mode="slow", delay_seconds=1.5, path_prefix="/v1/payments",
                            count=1)
        verifying = asyncio.create_task(
            verification.verify_payment(pool, razorpay, settings, request))
        await asyncio.sleep(0.5)  # verify has read the booking and waits on Razorpay
        assert not verifying.done()
        await cancel(pool, booking)
        with pytest.raises(HttpError) as refused:
            await verifying
        assert (refused.value.status, refused.value.code) == (409, "booking_cancelled")
        assert await live_passes(pool, booking) == 0


async def test_issue_passes_refuses_a_booking_that_is_not_paid_or_is_cancelled(pool):
    unpaid = await make_booking(pool)
    async with pool.acquire() as conn:
        with pytest.raises(BookingNotPaid):
            await issue_passes(conn, unpaid["booking_id"], "pass-secret")
    assert await live_passes(pool, unpaid) == 0


async def test_capture_on_verify_leaves_a_cancelled_bookings_payment_uncaptured(
        pool, base_settings):
    async with running_sandbox(base_settings, capture_on_verify=True) as settings:
        booking, razorpay, request = await paid_at_razorpay(pool, settings, "authorized")
        await cancel(pool, booking)
        with pytest.raises(HttpError) as refused:
            await verification.verify_payment(pool, razorpay, settings, request)
        assert (refused.value.status, refused.value.code) == (409, "booking_cancelled")
        assert (await razorpay.fetch_payment(request.payment_id))["status"] == "authorized"
        row = await pool.fetchrow(
            "SELECT status, capture_withheld FROM payments WHERE razorpay_order_id = $1",
            request.order_id)
        assert dict(row) == {"status": "authorized", "capture_withheld": "booking_cancelled"}
        refunds = await pool.fetchval(
            "SELECT count(*) FROM refunds r JOIN payments p ON p.id = r.payment_id"
            " WHERE p.razorpay_order_id = $1", request.order_id)
        assert refunds == 0


async def test_the_reconciler_does_not_capture_for_a_cancelled_booking(pool, base_settings):
    async with running_sandbox(base_settings, capture_on_verify=True) as settings:
        booking, razorpay, request = await paid_at_razorpay(pool, settings, "authorized")
        await cancel(pool, booking)
        row = await pool.fetchrow("SELECT * FROM payments WHERE razorpay_order_id = $1",
                                  request.order_id)
        await reconciler._reconcile_one(pool, razorpay, settings, row)
        assert (await razorpay.fetch_payment(request.payment_id))["status"] == "authorized"
        assert await pool.fetchval(
            "SELECT capture_withheld FROM payments WHERE razorpay_order_id = $1",
            request.order_id) == "booking_cancelled"


async def test_the_webhooks_capture_leaves_a_cancelled_bookings_payment_uncaptured(
        pool, base_settings):
    async with running_sandbox(base_settings, capture_on_verify=True) as settings:
        booking, razorpay, request = await paid_at_razorpay(pool, settings, "authorized")
        await cancel(pool, booking)
        outcome = PaymentOutcome(request.order_id, request.payment_id,
                                 PaymentStatus.AUTHORIZED, booking["amount_paise"])
        await webhooks.capture_and_record(pool, razorpay, outcome)
        assert (await razorpay.fetch_payment(request.payment_id))["status"] == "authorized"
        assert await pool.fetchval(
            "SELECT capture_withheld FROM payments WHERE razorpay_order_id = $1",
            request.order_id) == "booking_cancelled"


async def test_capture_on_verify_leaves_a_payment_for_an_old_price_uncaptured(
        pool, base_settings):
    async with running_sandbox(base_settings, capture_on_verify=True) as settings:
        booking, razorpay, request = await paid_at_razorpay(pool, settings, "authorized")
        # the price changed before we heard of the payment: create-order superseded the order
        await pool.execute("UPDATE bookings SET amount_paise = amount_paise + 30000"
                           " WHERE id = $1", booking["booking_id"])
        await pool.execute("UPDATE payments SET superseded_at = now()"
                           " WHERE razorpay_order_id = $1", request.order_id)
        with pytest.raises(HttpError) as refused:
            await verification.verify_payment(pool, razorpay, settings, request)
        assert (refused.value.status, refused.value.code) == (409, "order_superseded")
        assert "not captured" in refused.value.message
        assert (await razorpay.fetch_payment(request.payment_id))["status"] == "authorized"
        assert await pool.fetchval(
            "SELECT capture_withheld FROM payments WHERE razorpay_order_id = $1",
            request.order_id) == "order_superseded"
        assert await pool.fetchval("SELECT count(*) FROM refunds WHERE booking_id = $1",
                                   booking["booking_id"]) == 0


async def test_verify_after_the_money_went_back_gives_no_passes(pool, base_settings):
    async with running_sandbox(base_settings) as settings:
        booking, razorpay, request = await paid_at_razorpay(pool, settings, "captured")
        first = await verification.verify_payment(pool, razorpay, settings, request)
        assert first["collection_qr"].startswith("data:image/png")
        await pool.execute("UPDATE payments SET refunded_paise = amount_paise"
                           " WHERE razorpay_order_id = $1", request.order_id)  # refunded whole
        with pytest.raises(HttpError) as refused:
            await verification.verify_payment(pool, razorpay, settings, request)
        assert (refused.value.status, refused.value.code) == (409, "refunded")
        async with pool.acquire() as conn:
            with pytest.raises(BookingNotPaid) as why:
                await issue_passes(conn, booking["booking_id"], "pass-secret")
        assert why.value.why == "refunded"
