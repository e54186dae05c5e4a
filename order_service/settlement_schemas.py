"""What GET /api/razorpay/settlements answers: the view builds it with these models and the
OpenAPI document is generated from them."""

from __future__ import annotations

from pydantic import BaseModel

BAD_DATE = "from and to must be dates (YYYY-MM-DD), from not after to, at most a year apart"
BAD_PAGE = "count must be 1 to 1000 and skip at least 0"


class SettlementAnswer(BaseModel):
    settlement_id: str
    utr: str | None
    amount: float  # rupees
    fees: float
    tax: float
    settled_at: str  # ISO 8601
    items: int
    status: str  # pending | matched | flagged
    matched: bool
    difference: float | None  # rupees: the items' net minus the amount; None while pending


class SettlementsResponse(BaseModel):
    settlements: list[SettlementAnswer]
