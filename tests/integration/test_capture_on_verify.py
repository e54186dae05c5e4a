"""Capture on verify / on payment.authorized (CAPTURE_ON_VERIFY=true), through the handler
seams, against an in-process sandbox and the real database. No broker needed."""

import pytest

from shared.http import HttpError
from shared.payment_state import PaymentOutcome, PaymentStatus
from testkit.inprocess import running_sandbox
from tests.support.orders import authorized_payment, pay
from verification_service import handlers as verification
from webhook_service import handlers as webhooks


@pytest.fixture(scope="module")
async def sandbox_settings(base_settings):
    async with running_sandbox(base_settings, capture_on_verify=True) as settings:
        yield settings


async def test_verify_captures_an_authorized_payment_once(pool, sandbox_settings):
    booking, razorpay, checkout = await authorized_payment(pool, sandbox_settings)
    request = verification.VerifyRequest(
        checkout["razorpay_order_id"], checkout["razorpay_payment_id"],
        checkout["razorpay_signature"], booking["booking_id"], booking["customer_id"])
    first = await verification.verify_payment(pool, razorpay, sandbox_settings, request)
    assert first["razorpay_payment_id"] == checkout["razorpay_payment_id"]
    payment = await razorpay.fetch_payment(checkout["razorpay_payment_id"])
    assert payment["status"] == "captured"
    again = await verification.verify_payment(pool, razorpay, sandbox_settings, request)
    assert again == first
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT status FROM payments WHERE booking_id = $1", booking["booking_id"]
        ) == "captured"


async def test_without_capture_on_verify_authorized_is_refused(pool, sandbox_settings):
    settings = sandbox_settings.model_copy(update={"capture_on_verify": False})
    booking, razorpay, checkout = await authorized_payment(pool, settings)
    request = verification.VerifyRequest(
        checkout["razorpay_order_id"], checkout["razorpay_payment_id"],
        checkout["razorpay_signature"], booking["booking_id"], booking["customer_id"])
    with pytest.raises(HttpError) as refused:
        await verification.verify_payment(pool, razorpay, settings, request)
    assert refused.value.message == "Payment not captured by Razorpay. Status: authorized"
    assert (await razorpay.fetch_payment(checkout["razorpay_payment_id"]))["status"] == (
        "authorized")


async def test_webhook_authorized_is_captured_when_capture_is_on(pool, sandbox_settings):
    booking, razorpay, checkout = await authorized_payment(pool, sandbox_settings)
    outcome = PaymentOutcome(checkout["razorpay_order_id"], checkout["razorpay_payment_id"],
                             PaymentStatus.AUTHORIZED, booking["amount_paise"])
    await webhooks.capture_and_record(pool, razorpay, outcome)
    await webhooks.capture_and_record(pool, razorpay, outcome)  # twice: still one capture
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, razorpay_payment_id FROM payments WHERE booking_id = $1",
            booking["booking_id"])
        events = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE routing_key = 'payment.captured'"
            " AND (body->'data'->>'booking_id')::bigint = $1", booking["booking_id"])
    assert dict(row) == {"status": "captured",
                         "razorpay_payment_id": checkout["razorpay_payment_id"]}
    assert events == 1


async def test_webhook_authorized_for_a_booking_paid_meanwhile_is_captured_then_refunded(
        pool, sandbox_settings):
    booking, razorpay, checkout = await authorized_payment(pool, sandbox_settings)
    # another order of the booking was paid first (a second tab)
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id, captured_at)"
        " VALUES ($1, $2, $3, 'r2', $4, 'captured', $5, now())",
        booking["booking_id"], booking["customer_id"], "order_first_" + checkout[
            "razorpay_order_id"], booking["amount_paise"], "pay_first_" + checkout[
            "razorpay_payment_id"])
    outcome = PaymentOutcome(checkout["razorpay_order_id"], checkout["razorpay_payment_id"],
                             PaymentStatus.AUTHORIZED, booking["amount_paise"])
    await webhooks.capture_and_record(pool, razorpay, outcome)
    await webhooks.capture_and_record(pool, razorpay, outcome)  # redelivered: one refund
    assert (await razorpay.fetch_payment(checkout["razorpay_payment_id"]))["status"] == (
        "captured")
    refunds = await pool.fetch(
        "SELECT cause, razorpay_payment_id, amount_paise FROM refunds WHERE booking_id = $1",
        booking["booking_id"])
    assert [tuple(r) for r in refunds] == [
        ("duplicate_payment", checkout["razorpay_payment_id"], booking["amount_paise"])]


async def test_webhook_authorized_on_an_order_another_payment_captured_is_refunded(
        pool, sandbox_settings):
    """The customer paid the order twice; payment A's capture is recorded first. Payment
    B's `payment.authorized` then comes: B is captured by us and refunded in full, once."""
    booking, razorpay, first = await authorized_payment(pool, sandbox_settings)
    order_id = first["razorpay_order_id"]
    second = await pay(sandbox_settings, order_id)
    amount = booking["amount_paise"]
    await webhooks.capture_and_record(pool, razorpay, PaymentOutcome(
        order_id, first["razorpay_payment_id"], PaymentStatus.AUTHORIZED, amount))
    late = PaymentOutcome(order_id, second["razorpay_payment_id"], PaymentStatus.AUTHORIZED,
                          amount)
    await webhooks.capture_and_record(pool, razorpay, late)
    await webhooks.capture_and_record(pool, razorpay, late)  # redelivered: one refund
    assert (await razorpay.fetch_payment(second["razorpay_payment_id"]))["status"] == (
        "captured")
    row = await pool.fetchrow("SELECT status, razorpay_payment_id FROM payments"
                              " WHERE razorpay_order_id = $1", order_id)
    assert tuple(row) == ("captured", first["razorpay_payment_id"])
    refunds = await pool.fetch(
        "SELECT cause, razorpay_payment_id, amount_paise FROM refunds WHERE booking_id = $1",
        booking["booking_id"])
    assert [tuple(r) for r in refunds] == [
        ("duplicate_payment", second["razorpay_payment_id"], amount)]
