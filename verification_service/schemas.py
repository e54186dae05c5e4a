from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, Field

from shared.schemas import Input, PositiveId, RazorpayId, Signature

PngDataUrl = Annotated[str, Field(pattern=r"^data:image/png;base64,")]

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
    """What Checkout posts: the three fields on success, `error[...]` fields on failure.
    Anything else redirects to the failure page."""

    razorpay_payment_id: RazorpayId
    razorpay_order_id: RazorpayId
    razorpay_signature: Signature


class BookingDetails(BaseModel):
    booking_id: PositiveId
    customer_name: str
    car: str
    amount: float = Field(description="Rupees.")
    start_date: date
    end_date: date


class VerifyPaymentResponse(BaseModel):
    message: str
    razorpay_payment_id: str
    collection_qr: PngDataUrl
    return_qr: PngDataUrl
    booking_details: BookingDetails
