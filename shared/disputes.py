"""Applies the dispute state machine in SQL: `payment.dispute.*` webhooks (and answers to
our accept/contest calls) upsert the dispute row by Razorpay's id and move it forward only.

Events come in any order and more than once. A dispute we have not seen is inserted at the
status its event names; a known one moves by one conditional UPDATE, only to a status the
state machine allows from where it is, and only for an event not older than the last one
applied (action_required and under_review can follow each other). Every change is kept in
`dispute_changes`. A dispute for a payment whose capture we have not seen yet is kept; its
payment and booking are filled in when that capture is known (order_service/dispute_watch.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from shared import metrics
from shared.dispute_state import EVENT_TARGET, DisputeStatus, allowed_sources, is_open
from shared.logging import log_ctx
from shared.money import paise_to_rupees, whole_number

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DisputeReport:
    """What Razorpay says about one dispute, in our vocabulary."""

    razorpay_dispute_id: str
    razorpay_payment_id: str
    status: DisputeStatus
    event: str
    amount_paise: int
    amount_deducted_paise: int
    currency: str
    phase: str | None
    reason_code: str | None
    reason_description: str | None
    respond_by: datetime | None
    occurred_at: datetime


def _text(value, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _time(epoch) -> datetime | None:
    epoch = whole_number(epoch)
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None and epoch >= 0 else None


def dispute_report(event: str, entity: dict, occurred_epoch=None) -> DisputeReport | None:
    """A `payment.dispute.*` event's dispute entity (or an API answer, `event` naming the
    status it reports) as a DisputeReport; None if it can't be one."""
    target = EVENT_TARGET.get(event)
    dispute_id, payment_id = entity.get("id"), entity.get("payment_id")
    amount = whole_number(entity.get("amount"))
    if target is None or not isinstance(dispute_id, str) or not dispute_id.startswith("disp_"):
        return None
    if not isinstance(payment_id, str) or amount is None or amount <= 0:
        return None
    occurred = _time(occurred_epoch) or _time(entity.get("created_at")) or datetime.now(UTC)
    return DisputeReport(
        razorpay_dispute_id=dispute_id[:64], razorpay_payment_id=payment_id[:64], status=target,
        event=event, amount_paise=amount,
        amount_deducted_paise=max(whole_number(entity.get("amount_deducted")) or 0, 0),
        currency=_text(entity.get("currency"), 3) or "INR", phase=_text(entity.get("phase"), 40),
        reason_code=_text(entity.get("reason_code"), 64),
        reason_description=_text(entity.get("reason_description"), 500),
        respond_by=_time(entity.get("respond_by")), occurred_at=occurred,
    )


def report_of_webhook(payload: dict) -> DisputeReport | None:
    try:
        entity = payload["payload"]["dispute"]["entity"]
    except (KeyError, TypeError):
        return None
    if not isinstance(entity, dict):
        return None
    return dispute_report(str(payload.get("event")), entity, payload.get("created_at"))


# The disputed payment's row lock, the one a refund's running total takes (migration 005;
# a duplicate's refund, its duplicate_payments row): a refund written meanwhile waits for
# this transaction, and the trigger that checks it against disputes (migration 018) then
# sees what this one changed. Every dispute write takes it before the dispute's row. Only a
# captured payment can be refunded or disputed (as _DISPUTED_PAYMENT links), and only its
# Razorpay id is indexed (payments_payment_id).
LOCK_DISPUTED = """
WITH payment AS (
    SELECT 1 FROM payments WHERE razorpay_payment_id = $1 AND status = 'captured'
    FOR NO KEY UPDATE),
duplicate AS (
    SELECT 1 FROM duplicate_payments WHERE razorpay_payment_id = $1 FOR NO KEY UPDATE)
SELECT (SELECT count(*) FROM payment) + (SELECT count(*) FROM duplicate)
"""

# The booking a disputed Razorpay payment belongs to, and the order it was paid on: the
# booking's kept capture, or a second charge of it (duplicate_payments). `{payment}` is the
# SQL expression of the Razorpay payment id.
_DISPUTED_PAYMENT = """
    SELECT id AS payment_id, booking_id FROM payments
    WHERE razorpay_payment_id = {payment} AND status = 'captured'
    UNION ALL
    SELECT payment_id, booking_id FROM duplicate_payments
    WHERE razorpay_payment_id = {payment}
    LIMIT 1"""

_INSERT = f"""
INSERT INTO disputes (razorpay_dispute_id, razorpay_payment_id, payment_id, booking_id,
    amount_paise, amount_deducted_paise, currency, status, phase, reason_code,
    reason_description, respond_by, razorpay_updated_at)
SELECT $1, $2, p.payment_id, p.booking_id, $3, $4, $5, $6, $7, $8, $9, $10, $11
FROM (SELECT 1) one
LEFT JOIN LATERAL ({_DISPUTED_PAYMENT.format(payment="$2")}) p ON true
ON CONFLICT (razorpay_dispute_id) DO NOTHING
RETURNING *
"""

# A dispute that came before the capture (or the second charge) it is about: linked once
# that payment is known (order_service/dispute_watch.py, each tick).
LINK_DISPUTES = f"""
UPDATE disputes d SET payment_id = p.payment_id, booking_id = p.booking_id, updated_at = now()
FROM disputes u CROSS JOIN LATERAL ({_DISPUTED_PAYMENT.format(payment="u.razorpay_payment_id")}) p
WHERE d.id = u.id AND u.booking_id IS NULL
"""

_MOVE = """
WITH old AS (SELECT id, status FROM disputes WHERE razorpay_dispute_id = $1 FOR UPDATE)
UPDATE disputes d SET
    status = $2, amount_deducted_paise = $3, phase = COALESCE($4, d.phase),
    respond_by = COALESCE($5, d.respond_by), razorpay_updated_at = $6, updated_at = now(),
    evidence_submitted_at = CASE WHEN $2 = 'under_review'
        THEN COALESCE(d.evidence_submitted_at, now()) ELSE d.evidence_submitted_at END
FROM old
WHERE d.id = old.id AND old.status = ANY($7::text[]) AND d.razorpay_updated_at <= $6
RETURNING d.*, old.status AS from_status
"""


async def apply_dispute(
    conn: asyncpg.Connection, report: DisputeReport
) -> tuple[str, asyncpg.Record | None]:
    """In the caller's transaction: ("applied" | "stale", the row after)."""
    await conn.execute(LOCK_DISPUTED, report.razorpay_payment_id)
    row = await conn.fetchrow(
        _INSERT, report.razorpay_dispute_id, report.razorpay_payment_id, report.amount_paise,
        report.amount_deducted_paise, report.currency, report.status.value, report.phase,
        report.reason_code, report.reason_description, report.respond_by, report.occurred_at)
    from_status = None
    if row is None:
        row = await conn.fetchrow(
            _MOVE, report.razorpay_dispute_id, report.status.value,
            report.amount_deducted_paise, report.phase, report.respond_by, report.occurred_at,
            allowed_sources(report.status))
        if row is None:
            return "stale", await conn.fetchrow(
                "SELECT * FROM disputes WHERE razorpay_dispute_id = $1",
                report.razorpay_dispute_id)
        from_status = row["from_status"]
    await conn.execute(
        "INSERT INTO dispute_changes (dispute_id, event, from_status, to_status,"
        " amount_deducted_paise, occurred_at) VALUES ($1, $2, $3, $4, $5, $6)",
        row["id"], report.event, from_status, report.status.value,
        report.amount_deducted_paise, report.occurred_at)
    metrics.DISPUTE_EVENTS.labels(report.status.value).inc()
    if from_status is None and is_open(report.status):
        # Razorpay has taken the money back and the clock to respond_by runs: a person acts
        log.error("ALARM dispute opened", extra=log_ctx(
            booking_id=row["booking_id"], dispute=row["id"], alarm="dispute_opened",
            respond_by=row["respond_by"].isoformat() if row["respond_by"] else None))
    else:
        log.info("dispute %s", report.status.value, extra=log_ctx(
            booking_id=row["booking_id"], dispute=row["id"]))
    return "applied", row


def is_dispute_event(event) -> bool:
    return event in EVENT_TARGET


def dispute_view(row) -> dict:
    """A dispute as the admin API and `a6pay` show it (Razorpay's dispute id is the handle
    operators use; no payment id)."""
    return {
        "dispute_id": row["razorpay_dispute_id"],
        "booking_id": row["booking_id"],
        "amount": paise_to_rupees(row["amount_paise"]),
        "amount_deducted": paise_to_rupees(row["amount_deducted_paise"]),
        "status": row["status"],
        "phase": row["phase"],
        "reason_code": row["reason_code"],
        "respond_by": row["respond_by"].isoformat() if row["respond_by"] else None,
        "evidence_submitted_at": (row["evidence_submitted_at"].isoformat()
                                  if row["evidence_submitted_at"] else None),
        "created_at": row["created_at"].isoformat(),
    }
