from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt, field_validator

from shared.money import AmountError, rupees_to_paise
from shared.schemas import Input, PositiveId

CREATE_ORDER_FIELDS = ("booking_id", "customer_id", "amount")
MISSING_CREATE_ORDER = "Missing required fields: booking_id, customer_id, amount"


def _paise_or_none(value):
    if value is None:
        return None
    try:
        rupees_to_paise(value)
    except AmountError as exc:
        raise ValueError(str(exc)) from None
    return value


class CreateOrderBody(Input):
    booking_id: PositiveId
    customer_id: PositiveId
    # The validator enforces these; the schema states them for API clients.
    amount: Annotated[StrictInt | StrictFloat, Field(json_schema_extra={
        "exclusiveMinimum": 0, "maximum": 100_000_000, "multipleOf": 0.01,
        "description": "Rupees, at most 2 decimals; must equal the booking's amount."})]

    @field_validator("amount")
    @classmethod
    def _exact_paise(cls, value):
        return _paise_or_none(value)

    @property
    def amount_paise(self) -> int:
        return rupees_to_paise(self.amount)


class CancelBody(Input):
    reason: Annotated[str, Field(max_length=500)] | None = None
    cancellation_fee: Annotated[StrictInt | StrictFloat | None, Field(json_schema_extra={
        "minimum": 0, "maximum": 100_000_000, "multipleOf": 0.01,
        "description": "Rupees kept from the refund."})] = None

    @field_validator("cancellation_fee")
    @classmethod
    def _exact_fee(cls, value):
        if value is not None and value == 0:
            return value  # no fee
        return _paise_or_none(value)

    @property
    def fee_paise(self) -> int:
        return rupees_to_paise(self.cancellation_fee) if self.cancellation_fee else 0


class RefundBody(Input):
    booking_id: PositiveId
    amount: Annotated[StrictInt | StrictFloat | None, Field(json_schema_extra={
        "exclusiveMinimum": 0, "maximum": 100_000_000, "multipleOf": 0.01,
        "description": "Rupees; default all that remains to refund."})] = None
    reason: Annotated[str, Field(max_length=500)] | None = None

    @field_validator("amount")
    @classmethod
    def _exact_paise(cls, value):
        return _paise_or_none(value)

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
