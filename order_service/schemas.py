from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictFloat, StrictInt, field_validator

from shared.money import AmountError, rupees_to_paise
from shared.schemas import Input, PositiveId

CREATE_ORDER_FIELDS = ("booking_id", "customer_id", "amount")
MISSING_CREATE_ORDER = "Missing required fields: booking_id, customer_id, amount"


class CreateOrderBody(Input):
    booking_id: PositiveId
    customer_id: PositiveId
    amount: StrictInt | StrictFloat

    @field_validator("amount")
    @classmethod
    def _exact_paise(cls, value):
        try:
            rupees_to_paise(value)
        except AmountError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def amount_paise(self) -> int:
        return rupees_to_paise(self.amount)


def _paise_or_none(value):
    if value is None:
        return None
    try:
        rupees_to_paise(value)
    except AmountError as exc:
        raise ValueError(str(exc)) from None
    return value


class CancelBody(Input):
    reason: Annotated[str, Field(max_length=500)] | None = None
    cancellation_fee: StrictInt | StrictFloat | None = None

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
    amount: StrictInt | StrictFloat | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None

    @field_validator("amount")
    @classmethod
    def _exact_paise(cls, value):
        return _paise_or_none(value)

    @property
    def amount_paise(self) -> int | None:
        return None if self.amount is None else rupees_to_paise(self.amount)
