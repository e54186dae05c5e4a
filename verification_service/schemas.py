from __future__ import annotations

from shared.schemas import Input, PositiveId, RazorpayId, Signature

VERIFY_FIELDS = (
    "razorpay_payment_id", "razorpay_order_id", "razorpay_signature", "booking_id", "customer_id"
)
MISSING_VERIFY = "Missing required fields: " + ", ".join(VERIFY_FIELDS)
CALLBACK_FIELDS = VERIFY_FIELDS[:3]


class VerifyBody(Input):
    razorpay_payment_id: RazorpayId
    razorpay_order_id: RazorpayId
    razorpay_signature: Signature
    booking_id: PositiveId
    customer_id: PositiveId


class CallbackForm(Input):
    razorpay_payment_id: RazorpayId
    razorpay_order_id: RazorpayId
    razorpay_signature: Signature
