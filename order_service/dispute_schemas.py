"""The disputes admin API's answers, as pydantic models (the OpenAPI document's source)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.schemas import PositiveId

# The answers' messages (here, so the OpenAPI document names them without loading the SDK).
# While a dispute is open Razorpay holds the money: a refund too would pay the customer twice
DISPUTED = "The payment has an open dispute: no refund or cancellation until it is decided"
NOT_FOUND = "Dispute not found"
UNKNOWN_STATUS = "status must be one of: open, action_required, under_review, won, lost, closed"
CANNOT_CONTEST = "The dispute can no longer be contested: it is not waiting for evidence"
CANNOT_ACCEPT = "The dispute can no longer be accepted: it is not waiting for an answer"
NOT_OURS_YET = "The disputed payment's capture is not recorded yet: no evidence to send"


class Dispute(BaseModel):
    dispute_id: str = Field(description="Razorpay's dispute id (disp_…).")
    booking_id: PositiveId | None = Field(
        description="None while the disputed payment's capture is not recorded yet.")
    amount: float = Field(description="Rupees disputed.")
    amount_deducted: float = Field(description="Rupees Razorpay holds or took for it.")
    status: Literal["open", "action_required", "under_review", "won", "lost", "closed"]
    phase: str | None = None
    reason_code: str | None = None
    respond_by: datetime | None = Field(description="Lost automatically if not answered by.")
    evidence_submitted_at: datetime | None = None
    created_at: datetime


class DisputesResponse(BaseModel):
    disputes: list[Dispute]


class DisputeActionResponse(BaseModel):
    message: str
    dispute: Dispute
