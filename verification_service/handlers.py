"""Payment verification: the signature first, then ownership, then Razorpay's own word.

The browser's claim is never enough: the payment is fetched from Razorpay and must be
`captured`, for this order, for this amount, before the state machine records it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from shared.capture_hold import BOOKING_CANCELLED, capture_withheld
from shared.duplicate_payments import refund_second_capture
from shared.http import HttpError
from shared.money import paise_to_rupees
from shared.outbox import outbox_transaction
from shared.pass_store import BookingNotPaid, issue_passes
from shared.payment_state import PaymentStatus
from shared.payments import record_outcome
from shared.razorpay_client import (
    RazorpayClient,
    RazorpayError,
    RazorpayRejected,
    RazorpayTimeout,
    RazorpayUnavailable,
)
from shared.razorpay_map import outcome_from_payment
from shared.refunds import submit_refund
from shared.settings import Settings
from shared.signatures import checkout_signature_valid

log = logging.getLogger(__name__)

FRAUD = "❌ Payment signature verification failed. Payment may be fraudulent."
BOOKING_NOT_FOUND = "Booking not found"
ALREADY_PAID = "Payment already completed for this booking"
MISMATCH = "Payment does not match this order."
CANCELLED = "Booking was cancelled; the payment will be refunded."
REFUNDED = "Payment was refunded; the booking has no passes."
CANCELLED_UNCAPTURED = "Booking was cancelled; the payment was not captured and is released."
OLD_PRICE = ("The booking's price changed before this payment; the payment will be refunded."
             " Please pay the current amount.")
OLD_PRICE_UNCAPTURED = ("The booking's price changed before this payment; the payment was not"
                        " captured and is released. Please pay the current amount.")
VERIFIED = "✅ Payment verified and booking confirmed!"


@dataclass(frozen=True)
class VerifyRequest:
    order_id: str
    payment_id: str
    signature: str
    booking_id: int | None = None  # None: the callback, which knows only the order
    customer_id: int | None = None


ORDER_WITH_BOOKING = """
SELECT p.*, b.start_date, b.end_date, b.status AS booking_status,
       c.name AS customer_name, car.name AS car_name
FROM payments p
JOIN bookings b ON b.id = p.booking_id
JOIN customers c ON c.id = p.customer_id
JOIN cars car ON car.id = b.car_id
WHERE p.razorpay_order_id = $1
"""


async def verify_payment(
    pool: asyncpg.Pool, razorpay: RazorpayClient, settings: Settings, req: VerifyRequest,
    correlation_id: str | None = None,
) -> dict:
    if not checkout_signature_valid(
        req.order_id, req.payment_id, req.signature, settings.razorpay_key_secret
    ):
        raise HttpError(FRAUD, 400, code="invalid_signature")
    async with pool.acquire() as conn:
        order = await conn.fetchrow(ORDER_WITH_BOOKING, req.order_id)
    if order is None or not _belongs(order, req):
        raise HttpError(BOOKING_NOT_FOUND, 404, code="not_found")
    if order["status"] == PaymentStatus.CAPTURED:
        if order["razorpay_payment_id"] != req.payment_id:  # charged twice: refund this one
            await refund_if_second_capture(pool, razorpay, order, req.payment_id, correlation_id)
        return await _settled(pool, order, req.payment_id, settings)

    payment, withheld = await _captured_payment(pool, razorpay, settings, order, req.payment_id)
    outcome = outcome_from_payment(payment)  # None: a status we never act on (refunded)
    recorded = None
    if outcome is not None:
        async with outbox_transaction(pool) as conn:
            recorded = await record_outcome(conn, outcome, "verify", correlation_id)
            second = recorded.conflict and await refund_second_capture(
                conn, outcome, "verify", correlation_id)
        if second:
            await submit_refund(pool, razorpay, second)
    if withheld == BOOKING_CANCELLED:
        raise HttpError(CANCELLED_UNCAPTURED, 409, code="booking_cancelled")
    if withheld:
        raise HttpError(OLD_PRICE_UNCAPTURED, 409, code="order_superseded")
    # a payment on an order made for an earlier price: refunded, above or before
    refunded_before = order["superseded_at"] is not None and outcome is None
    refunded_above = (recorded is not None and recorded.conflict
                      and recorded.payment["superseded_at"] is not None)
    if refunded_before or refunded_above:
        raise HttpError(OLD_PRICE, 409, code="order_superseded")
    if recorded is None or outcome.status is not PaymentStatus.CAPTURED:
        raise HttpError(
            f"Payment not captured by Razorpay. Status: {payment.get('status')}", 400,
            code="not_captured",
        )
    return await _settled(pool, recorded.payment, req.payment_id, settings, order)


async def refund_if_second_capture(pool, razorpay, order, payment_id: str, correlation_id) -> None:
    """A verify of another payment for this paid order: if Razorpay says it is captured for
    this order, it is a second charge, refunded in full once (the 409 answers anyway)."""
    try:
        payment = await razorpay.fetch_payment(payment_id)
    except RazorpayError as exc:
        log.warning("verify: second payment not fetched: %s", type(exc).__name__)
        return  # the webhook or the reconciler finds it
    outcome = outcome_from_payment(payment)
    if outcome is None or outcome.order_id != order["razorpay_order_id"]:
        return
    async with outbox_transaction(pool) as conn:
        refund_id = await refund_second_capture(conn, outcome, "verify", correlation_id)
    if refund_id:
        await submit_refund(pool, razorpay, refund_id)


def _belongs(order: asyncpg.Record, req: VerifyRequest) -> bool:
    return (req.booking_id is None or order["booking_id"] == req.booking_id) and (
        req.customer_id is None or order["customer_id"] == req.customer_id
    )


async def _captured_payment(pool, razorpay, settings, order, payment_id: str):
    """The payment as Razorpay knows it, captured first if configured to (unless the booking
    would not keep it: then left authorized, and why); checked to be this order's, for this
    amount."""
    try:
        payment = await razorpay.fetch_payment(payment_id)
        _check_matches(payment, order)
        if payment.get("status") == "authorized" and settings.capture_on_verify:
            if withheld := await capture_withheld(pool, order["razorpay_order_id"]):
                return payment, withheld
            payment = await razorpay.capture_or_fetch(payment_id, order["amount_paise"])
            _check_matches(payment, order)
    except RazorpayRejected:
        raise HttpError("Payment not found at Razorpay.", 400, code="payment_not_found") from None
    except RazorpayTimeout:
        raise HttpError("Payment provider timed out. Please retry.", 504,
                        code="provider_unavailable") from None
    except RazorpayUnavailable:
        raise HttpError("Payment provider is unavailable. Please retry.", 503,
                        code="provider_unavailable") from None
    return payment, None


def _check_matches(payment: dict, order: asyncpg.Record) -> None:
    amount = payment.get("amount")
    if (
        not isinstance(payment.get("id"), str)
        or payment.get("order_id") != order["razorpay_order_id"]
        or type(amount) is not int
        or amount != order["amount_paise"]
        or payment.get("currency") != order["currency"]
    ):
        log.warning("verify: payment does not match its order")
        raise HttpError(MISMATCH, 400, code="mismatch")


async def _settled(pool, row, payment_id: str, settings: Settings, details=None) -> dict:
    """The 200 body, identical however many times the same payment is verified."""
    if (row is None or row["status"] != PaymentStatus.CAPTURED
            or row["razorpay_payment_id"] != payment_id):
        raise HttpError(ALREADY_PAID, 409, code="already_paid")
    details = details or row
    # The stored images (the notifier's, when it confirmed first); rendered once if none yet.
    # The booking is read again here, after Razorpay answered: a cancellation that came
    # while we waited gets no passes.
    try:
        async with pool.acquire() as conn:
            passes = await issue_passes(conn, row["booking_id"], settings.pass_signing_secret)
    except BookingNotPaid as exc:
        if exc.why == "refunded":  # all of it went back (refunds, chargebacks): no passes
            raise HttpError(REFUNDED, 409, code="refunded") from None
        # The capture is recorded (the money is real) with its automatic full refund
        # (shared/payments.py); no passes for a cancelled booking.
        log.warning("verify: payment captured for a cancelled booking; refunded automatically")
        raise HttpError(CANCELLED, 409, code="booking_cancelled") from None
    return {
        "message": VERIFIED,
        "razorpay_payment_id": payment_id,
        "collection_qr": passes["collection"][1],
        "return_qr": passes["return"][1],
        "booking_details": {
            "booking_id": row["booking_id"],
            "customer_name": details["customer_name"],
            "car": details["car_name"],
            "amount": paise_to_rupees(row["amount_paise"]),
            "start_date": details["start_date"].isoformat(),
            "end_date": details["end_date"].isoformat(),
        },
    }
