from __future__ import annotations

from pydantic import StrictFloat, StrictInt, field_validator

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
