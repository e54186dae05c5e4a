"""verify-payment and the checkout callback through the gateway, against the real processes."""

import asyncio
import base64
import io

import pytest

from shared.passes import verify_pass_token
from shared.settings import load_settings
from testkit.api_client import call, checkout_signature, pay, payment_status, verify
from tests.e2e.flows import a6pay, booking_with_order, counts, wait_confirmed

pytestmark = pytest.mark.e2e
FRAUD = "❌ Payment signature verification failed. Payment may be fraudulent."


async def test_verify_confirms_the_booking_with_scannable_passes(stack, http, pool):
    import zxingcpp
    from PIL import Image

    booking, order_id = await booking_with_order(http, stack, pool)
    checkout = await pay(http, stack, order_id, "captured", enabled=False)
    status, body, _ = await verify(http, stack, booking, checkout)
    assert status == 200, body
    assert body["message"] == "✅ Payment verified and booking confirmed!"
    assert body["razorpay_payment_id"] == checkout["razorpay_payment_id"]
    details = body["booking_details"]
    assert details["booking_id"] == booking["booking_id"]
    assert (details["customer_name"], details["car"], details["amount"]) == (
        "John Doe", "Maruti Swift", 1500.0)
    assert (details["start_date"], details["end_date"]) == ("2025-12-28", "2025-12-30")
    secret = load_settings().pass_signing_secret
    for field, kind in (("collection_qr", "collection"), ("return_qr", "return")):
        assert body[field].startswith("data:image/png;base64,")
        png = base64.b64decode(body[field].split(",", 1)[1])
        [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        assert verify_pass_token(code.text, secret) == (booking["booking_id"], kind)

    assert (await payment_status(http, stack, booking["booking_id"]))[1] == {
        "status": "paid", "paid": True,
        "razorpay_payment_id": checkout["razorpay_payment_id"]}
    confirmed = await wait_confirmed(pool, booking["booking_id"])
    assert sorted(p["kind"] for p in confirmed["passes"]) == ["collection", "return"]
    # the notifier stores the very images verify returned
    async with pool.acquire() as conn:
        stored = dict(await conn.fetch(
            "SELECT kind, qr_data_url FROM passes WHERE booking_id = $1", booking["booking_id"]))
    assert stored == {"collection": body["collection_qr"], "return": body["return_qr"]}

    again = await verify(http, stack, booking, checkout)
    assert again[:2] == (200, body)
    assert await counts(pool, booking["booking_id"]) == {
        "captured": 1, "captured_events": 1, "passes": 2, "confirmations": 1, "failures": 0}


@pytest.mark.parametrize("tamper", ["signature", "payment", "order", "empty-secret"])
async def test_forged_signatures_are_refused(stack, http, pool, tamper):
    booking, order_id = await booking_with_order(http, stack, pool)
    checkout = await pay(http, stack, order_id, "captured", enabled=False)
    forged = dict(checkout)
    if tamper == "signature":
        forged["razorpay_signature"] = "0" * 64
    elif tamper == "payment":
        forged["razorpay_payment_id"] = "pay_Forged00000001"
    elif tamper == "order":
        forged["razorpay_order_id"] = "order_Forged0000001"
    else:
        forged["razorpay_signature"] = checkout_signature(order_id, checkout[
            "razorpay_payment_id"], secret="")
    status, body, _ = await verify(http, stack, booking, forged)
    assert (status, body) == (400, {"message": FRAUD})
    assert (await payment_status(http, stack, booking["booking_id"]))[1]["paid"] is False


async def test_someone_elses_booking_or_customer_is_404(stack, http, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    other, _ = await booking_with_order(http, stack, pool)
    checkout = await pay(http, stack, order_id, "captured", enabled=False)
    for overrides in ({"booking_id": other["booking_id"]}, {"customer_id": other["customer_id"]}):
        status, body, _ = await verify(http, stack, booking, checkout, **overrides)
        assert (status, body) == (404, {"message": "Booking not found"})
    assert (await payment_status(http, stack, booking["booking_id"]))[1]["paid"] is False


async def test_authorized_only_is_not_captured(stack, http, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    checkout = await pay(http, stack, order_id, "authorized", enabled=False)
    status, body, _ = await verify(http, stack, booking, checkout)
    assert (status, body) == (400, {"message":
                                    "Payment not captured by Razorpay. Status: authorized"})
    assert (await payment_status(http, stack, booking["booking_id"]))[1]["status"] == "pending"


async def test_another_payment_for_a_paid_booking_is_409(stack, http, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    failed = await pay(http, stack, order_id, "failed", enabled=False)
    paid = await pay(http, stack, order_id, "captured", enabled=False)
    assert (await verify(http, stack, booking, paid))[0] == 200
    failed_payment = failed["error"]["metadata"]["payment_id"]
    signed = {"razorpay_order_id": order_id, "razorpay_payment_id": failed_payment,
              "razorpay_signature": checkout_signature(order_id, failed_payment)}
    status, body, _ = await verify(http, stack, booking, signed)
    assert (status, body) == (409, {"message": "Payment already completed for this booking"})


async def test_payment_of_another_order_is_refused(stack, http, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    _, other_order = await booking_with_order(http, stack, pool)
    other = await pay(http, stack, other_order, "captured", enabled=False)
    pid = other["razorpay_payment_id"]
    signed = {"razorpay_order_id": order_id, "razorpay_payment_id": pid,
              "razorpay_signature": checkout_signature(order_id, pid)}
    status, body, _ = await verify(http, stack, booking, signed)
    assert status == 400 and body["message"] == "Payment does not match this order."


async def test_verify_racing_webhooks_fifty_bookings_one_fulfilment_each(stack, http, pool):
    flows = await asyncio.gather(*(booking_with_order(http, stack, pool) for _ in range(50)))
    checkouts = await asyncio.gather(
        *(pay(http, stack, order_id, "captured", duplicate=1) for _, order_id in flows))
    answers = await asyncio.gather(
        *(verify(http, stack, booking, c) for (booking, _), c in zip(flows, checkouts,
                                                                     strict=True)))
    assert [a[0] for a in answers] == [200] * 50
    for booking, _ in flows:
        await wait_confirmed(pool, booking["booking_id"])
    await asyncio.sleep(1.5)  # let duplicate webhooks land; they must change nothing
    for booking, _ in flows:
        assert await counts(pool, booking["booking_id"]) == {
            "captured": 1, "captured_events": 1, "passes": 2, "confirmations": 1, "failures": 0}


async def test_checkout_callback_redirects_to_success(stack, http, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    checkout = await pay(http, stack, order_id, "captured", enabled=False)
    form = {k: checkout[k] for k in ("razorpay_payment_id", "razorpay_order_id",
                                     "razorpay_signature")}
    status, _, headers = await call(http, "POST", f"{stack.gateway}/api/razorpay/callback",
                                    data=form)
    assert status == 303
    assert headers["Location"] == f"http://shop.example/paid?booking_id={booking['booking_id']}"
    await wait_confirmed(pool, booking["booking_id"])


@pytest.mark.parametrize(
    "form,reason",
    [
        ({"razorpay_signature": "f" * 64}, "invalid_signature"),
        ({"razorpay_signature": None}, "missing_fields"),
        ({"error[code]": "BAD_REQUEST_ERROR", "razorpay_payment_id": None,
          "razorpay_order_id": None, "razorpay_signature": None}, "payment_failed"),
    ],
)
async def test_checkout_callback_redirects_to_failure(stack, http, pool, form, reason):
    booking, order_id = await booking_with_order(http, stack, pool)
    checkout = await pay(http, stack, order_id, "captured", enabled=False)
    fields = {k: checkout[k] for k in ("razorpay_payment_id", "razorpay_order_id",
                                       "razorpay_signature")}
    fields.update(form)
    fields = {k: v for k, v in fields.items() if v is not None}
    status, _, headers = await call(http, "POST", f"{stack.gateway}/api/razorpay/callback",
                                    data=fields)
    assert status == 303
    assert headers["Location"] == f"http://shop.example/failed?reason={reason}"
    assert (await payment_status(http, stack, booking["booking_id"]))[1]["paid"] is False


async def test_a_booking_cancelled_before_payment_gets_no_passes(stack, http, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       booking["booking_id"])
    checkout = await pay(http, stack, order_id, "captured", enabled=False)
    status, body, _ = await verify(http, stack, booking, checkout)
    assert (status, body) == (409, {"message":
                                    "Booking was cancelled; the payment will be refunded."})
    # the money is real, so the capture is recorded and refunded in full at once
    status = (await payment_status(http, stack, booking["booking_id"]))[1]
    assert (status["status"], status["paid"]) == ("refunded", False)
    await asyncio.sleep(1)
    assert (await counts(pool, booking["booking_id"]))["passes"] == 0
    refunds = await pool.fetch("SELECT amount_paise, cause FROM refunds WHERE booking_id = $1",
                               booking["booking_id"])
    assert [tuple(r) for r in refunds] == [(150_000, "captured_after_cancellation")]
    owed = a6pay(stack, "refunds-needed")["refunds_needed"]
    assert booking["booking_id"] not in [r["booking_id"] for r in owed]
