"""What GET /api/razorpay/settlements answers: the view builds it with these models and the
OpenAPI document is generated from them."""

from __future__ import annotations

from pydantic import BaseModel

BAD_DATE = "from and to must be dates (YYYY-MM-DD), from not after to, at most a year apart"
MAX_SKIP = 1_000_000  # far past any real history, and well inside PostgreSQL's bigint
BAD_PAGE = "count must be 1 to 1000 and skip 0 to 1000000"  # a literal: the OpenAPI test reads it


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
