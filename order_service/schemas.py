from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictFloat, StrictInt

from shared.money import AmountError, rupees_to_paise
from shared.schemas import FreeText, Input, PositiveId

CREATE_ORDER_FIELDS = ("booking_id", "customer_id", "amount")
MISSING_CREATE_ORDER = "Missing required fields: booking_id, customer_id, amount"
REFUND_REFUSED = "Razorpay refused the refund: nothing was refunded"


def _exact_paise(value):
    """None, or rupees that convert exactly to paise; else a ValueError."""
    if value is not None:
        try:
            rupees_to_paise(value)
        except AmountError as exc:
            raise ValueError(str(exc)) from None
    return value


# The validators enforce these; the schemas state them for API clients.
Rupees = AfterValidator(_exact_paise)
Fee = AfterValidator(lambda value: value if value == 0 else _exact_paise(value))  # 0: no fee


class CreateOrderBody(Input):
    booking_id: PositiveId
    customer_id: PositiveId
    amount: Annotated[StrictInt | StrictFloat, Rupees, Field(json_schema_extra={
        "exclusiveMinimum": 0, "maximum": 100_000_000, "multipleOf": 0.01,
        "description": "Rupees, at most 2 decimals; must equal the booking's amount."})]

    @property
    def amount_paise(self) -> int:
        return rupees_to_paise(self.amount)


class CancelBody(Input):
    reason: Annotated[FreeText, Field(max_length=500)] | None = None
    cancellation_fee: Annotated[StrictInt | StrictFloat | None, Fee, Field(json_schema_extra={
        "minimum": 0, "maximum": 100_000_000, "multipleOf": 0.01,
        "description": "Rupees kept from the refund."})] = None

    @property
    def fee_paise(self) -> int:
        return rupees_to_paise(self.cancellation_fee) if self.cancellation_fee else 0


class RefundBody(Input):
    booking_id: PositiveId
    amount: Annotated[StrictInt | StrictFloat | None, Rupees, Field(json_schema_extra={
        "exclusiveMinimum": 0, "maximum": 100_000_000, "multipleOf": 0.01,
        "description": "Rupees; default all that remains to refund."})] = None
    reason: Annotated[FreeText, Field(max_length=500)] | None = None

    @property
    def amount_paise(self) -> int | None:
        return None if self.amount is None else rupees_to_paise(self.amount)


# Answers (the OpenAPI document is generated from these; the e2e fuzz checks real answers
# against it).
class CreateOrderResponse(BaseModel):
    message: str
    order_id: str
    amount: float = Field(description="Rupees.")
    currency: Literal["INR"]
    booking_id: PositiveId
    customer_email: str
    customer_name: str


class PaymentStatusResponse(BaseModel):
    status: Literal["pending", "paid", "failed", "refunded"]
    paid: bool
    razorpay_payment_id: str | None


class Refund(BaseModel):
    id: PositiveId
    booking_id: PositiveId
    amount: float = Field(description="Rupees.")
    status: Literal["requested", "pending", "processed", "failed"]
    final: bool
    cause: Literal["admin", "cancellation", "captured_after_cancellation", "duplicate_payment",
                   "outside"]
    reason: str | None = None
    failure_reason: str | None = None
    created_at: datetime


class RefundResponse(BaseModel):
    message: str
    refund: Refund
    remaining: float = Field(description="Rupees left to refund.")


class CancelResponse(BaseModel):
    message: str
    booking_id: PositiveId
    status: Literal["cancelled"]
    paid: bool
    cancellation_fee: float
    reason: str | None = None
    cancelled_at: datetime | None = None
    refund: Refund | None


class ScanBody(Input):
    """What the counter sends: the text of the pass's QR code."""

    token: Annotated[str, Field(min_length=1, max_length=200)]


class ScanResponse(BaseModel):
    message: str
    booking_id: int
    kind: Literal["collection", "return"]
    result: Literal["collected", "returned"]
    scanned_at: datetime
    car: str
    customer_name: str
    start_date: str
    end_date: str
