"""Answering disputes (the admin API and `a6pay`): list them, contest one with evidence from
our records, or accept one. No aiohttp here.

Contesting builds the evidence PDF, uploads it (POST /v1/documents) and submits it
(PATCH /v1/disputes/{id}/contest) with no transaction open; Razorpay's answer then moves our
row through the dispute state machine like a webhook would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import asyncpg

from order_service.dispute_schemas import (
    CANNOT_ACCEPT,
    CANNOT_CONTEST,
    NOT_FOUND,
    NOT_OURS_YET,
    UNKNOWN_STATUS,
)
from order_service.evidence import gather_evidence, summary
from order_service.evidence_pdf import evidence_pdf
from shared.dispute_state import OPEN_STATUSES, DisputeStatus, can_respond
from shared.disputes import apply_dispute, dispute_report, dispute_view
from shared.http import HttpError
from shared.logging import log_ctx
from shared.outbox import outbox_transaction
from shared.razorpay_client import (
    RazorpayClient,
    RazorpayError,
    RazorpayRejected,
    RazorpayTimeout,
)

log = logging.getLogger(__name__)

PROVIDER_UNAVAILABLE = "Payment provider is unavailable. Please retry."
PROVIDER_TIMEOUT = "Payment provider timed out. Please retry."

# A dispute entity's status, as the webhook event that reports it.
_STATUS_EVENT = {
    "open": "payment.dispute.created",
    "action_required": "payment.dispute.action_required",
    "under_review": "payment.dispute.under_review",
    "won": "payment.dispute.won",
    "lost": "payment.dispute.lost",
    "closed": "payment.dispute.closed",
}
_STATUSES = frozenset(s.value for s in DisputeStatus)

LIST_LIMIT = 500
# Open disputes first, nearest deadline first (through the partial index disputes_open),
# then the decided ones: a long history of decided disputes never crowds out one still
# waiting for us.
LIST_DISPUTES = """
SELECT * FROM (
    (SELECT *, 0 AS decided FROM disputes
     WHERE status = ANY($2::text[]) AND ($1::text IS NULL OR status = $1)
     ORDER BY respond_by NULLS LAST, id LIMIT $3)
    UNION ALL
    (SELECT *, 1 AS decided FROM disputes
     WHERE status <> ALL($2::text[]) AND ($1::text IS NULL OR status = $1)
     ORDER BY respond_by NULLS LAST, id LIMIT $3)) listed
ORDER BY decided, respond_by NULLS LAST, id LIMIT $3
"""


async def list_disputes(pool: asyncpg.Pool, status: str | None = None) -> dict:
    if status is not None and status not in _STATUSES:
        raise HttpError(UNKNOWN_STATUS, 400)
    async with pool.acquire() as conn:
        rows = await conn.fetch(LIST_DISPUTES, status, OPEN_STATUSES, LIST_LIMIT)
    return {"disputes": [dispute_view(r) for r in rows]}


async def disputes_of_booking(conn: asyncpg.Connection, booking_id: int) -> list[dict]:
    rows = await conn.fetch("SELECT * FROM disputes WHERE booking_id = $1 ORDER BY id",
                            booking_id)
    return [dispute_view(r) for r in rows]


async def contest_dispute(pool: asyncpg.Pool, razorpay: RazorpayClient, dispute_id: str) -> dict:
    row = await _respondable(pool, dispute_id, CANNOT_CONTEST)
    if row["booking_id"] is None:
        raise HttpError(NOT_OURS_YET, 409)
    method = await _payment_method(razorpay, row["razorpay_payment_id"])
    async with pool.acquire() as conn:
        records = await gather_evidence(conn, row["booking_id"], row["payment_id"], method)
    pdf = await asyncio.to_thread(evidence_pdf, records, dispute_id)  # CPU: off the loop
    async with _razorpay_answers():
        document = await razorpay.upload_document(
            f"a6cars-booking-{row['booking_id']}-evidence.pdf", pdf, "application/pdf")
        documents = [document["id"]]
        evidence = {
            "action": "submit",
            "amount": row["amount_paise"],
            "summary": summary(records),
            "proof_of_service": documents,
            "refund_cancellation_policy": documents,
        }
        answer, looked = await _answer_or_dispute(
            razorpay, dispute_id, lambda: razorpay.contest_dispute(dispute_id, evidence))
    async with outbox_transaction(pool) as conn:
        # Razorpay's answer first: it takes the payment's lock, then the dispute's row, the
        # order every dispute write takes (shared/disputes.py); the row first would deadlock
        # with a dispute webhook applied meanwhile.
        after = await _record_answer(conn, answer, dispute_id)
        if not looked or _contested(answer):
            after = await conn.fetchrow(
                "UPDATE disputes SET document_ids = $2, evidence_submitted_at = now()"
                " WHERE razorpay_dispute_id = $1 RETURNING *", dispute_id,
                _submitted_documents(answer) or documents)
    if looked and not _contested(answer):  # decided without our evidence: recorded, refused
        raise HttpError(CANNOT_CONTEST, 409)
    log.info("dispute contested", extra=log_ctx(booking_id=row["booking_id"], dispute=row["id"]))
    return {"message": "Dispute contested", "dispute": dispute_view(after)}


async def accept_dispute(pool: asyncpg.Pool, razorpay: RazorpayClient, dispute_id: str) -> dict:
    row = await _respondable(pool, dispute_id, CANNOT_ACCEPT)
    async with _razorpay_answers():
        answer, looked = await _answer_or_dispute(
            razorpay, dispute_id, lambda: razorpay.accept_dispute(dispute_id))
    async with outbox_transaction(pool) as conn:
        after = await _record_answer(conn, answer, dispute_id)
    if looked and answer.get("status") != DisputeStatus.LOST:  # decided otherwise: refused
        raise HttpError(CANNOT_ACCEPT, 409)
    log.info("dispute accepted", extra=log_ctx(booking_id=row["booking_id"], dispute=row["id"]))
    return {"message": "Dispute accepted", "dispute": dispute_view(after)}


async def _respondable(pool: asyncpg.Pool, dispute_id: str, refusal: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT * FROM disputes WHERE razorpay_dispute_id = $1", dispute_id[:64])
    if row is None:
        raise HttpError(NOT_FOUND, 404)
    if not can_respond(DisputeStatus(row["status"])):
        raise HttpError(refusal, 409)
    return row


async def _answer_or_dispute(razorpay: RazorpayClient, dispute_id: str, call
                             ) -> tuple[dict, bool]:
    """(Razorpay's answer to a contest or an acceptance, False); if it refuses one, (the
    dispute as Razorpay has it, True), unless that still waits for our answer (the refusal
    is then this request's). A first call may have landed with its answer lost to a timeout:
    the retry is refused since the dispute is no longer open, and that refusal, kept as the
    request's answer, would hide for good what the first call did."""
    try:
        return await call(), False
    except RazorpayRejected:
        dispute = await razorpay.fetch_dispute(dispute_id)
        if _waits_for_us(dispute):
            raise
        log.info("dispute answered before: refusal explained by its status",
                 extra=log_ctx(dispute=dispute_id, status=str(dispute.get("status"))[:40]))
        return dispute, True


def _waits_for_us(dispute: dict) -> bool:
    status = dispute.get("status")
    return status not in _STATUSES or can_respond(DisputeStatus(status))


def _evidence(dispute: dict) -> dict:
    evidence = dispute.get("evidence")
    return evidence if isinstance(evidence, dict) else {}


def _contested(dispute: dict) -> bool:
    """Our evidence reached Razorpay: it reviews it, or decided after it was submitted."""
    return (dispute.get("status") == DisputeStatus.UNDER_REVIEW
            or bool(_evidence(dispute).get("submitted_at")))


def _submitted_documents(dispute: dict) -> list[str]:
    """The evidence documents Razorpay holds (an earlier attempt's, if that one landed)."""
    ids = _evidence(dispute).get("proof_of_service")
    return [i[:64] for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


async def _record_answer(conn: asyncpg.Connection, answer: dict, dispute_id: str):
    report = dispute_report(_STATUS_EVENT.get(str(answer.get("status")), ""), answer,
                            int(datetime.now(UTC).timestamp()))
    if report is not None:
        await apply_dispute(conn, report)
    return await conn.fetchrow("SELECT * FROM disputes WHERE razorpay_dispute_id = $1",
                               dispute_id)


async def _payment_method(razorpay: RazorpayClient, payment_id: str) -> str | None:
    try:
        method = (await razorpay.fetch_payment(payment_id)).get("method")
    except RazorpayError:
        return None  # the evidence goes without it
    return method if isinstance(method, str) else None


@contextlib.asynccontextmanager
async def _razorpay_answers():
    """Razorpay's refusal becomes its own message (400); no answer becomes 503/504."""
    try:
        yield
    except RazorpayRejected as exc:
        raise HttpError(str(exc)[:300] or "Refused by Razorpay", 400) from None
    except RazorpayTimeout:
        raise HttpError(PROVIDER_TIMEOUT, 504) from None
    except RazorpayError:
        raise HttpError(PROVIDER_UNAVAILABLE, 503) from None
