"""`a6pay booking ID`: where one booking stands, without any payment identifier."""

from __future__ import annotations

import asyncpg

from shared.mail_state import MailState
from shared.money import paise_to_rupees
from shared.refunds import refund_view

BOOKING = (
    "SELECT id, status, amount_paise, confirmed_at, cancelled_at FROM bookings WHERE id = $1"
)
# The captured payment if there is one, else the latest attempt.
PAYMENT_STATUS = (
    "SELECT status FROM payments WHERE booking_id = $1"
    " ORDER BY status = 'captured' DESC, created_at DESC, id DESC LIMIT 1"
)
PASSES = (
    "SELECT kind, token, created_at, revoked_at FROM passes WHERE booking_id = $1"
    " ORDER BY kind = 'return', id"
)
REFUNDS = "SELECT * FROM refunds WHERE booking_id = $1 ORDER BY id"
SCANS = ("SELECT kind, result, scanned_at FROM pass_scans WHERE booking_id = $1"
         " ORDER BY scanned_at")
NOTIFICATIONS = (
    "SELECT kind, recipient, created_at, state, attempts, last_error, sent_at,"
    " next_attempt_at FROM notifications WHERE booking_id = $1"
    " ORDER BY created_at, id"
)


async def booking_report(pool: asyncpg.Pool, booking_id: int) -> dict | None:
    """Booking status, our payment status, passes and notifications; None if unknown."""
    async with pool.acquire() as conn:
        booking = await conn.fetchrow(BOOKING, booking_id)
        if booking is None:
            return None
        payment_status = await conn.fetchval(PAYMENT_STATUS, booking_id)
        passes = await conn.fetch(PASSES, booking_id)
        refunds = await conn.fetch(REFUNDS, booking_id)
        scans = await conn.fetch(SCANS, booking_id)
        notifications = await conn.fetch(NOTIFICATIONS, booking_id)
    return {
        "booking_id": booking["id"],
        "status": booking["status"],
        "confirmed_at": _iso(booking["confirmed_at"]),
        "cancelled_at": _iso(booking["cancelled_at"]),
        "payment_status": payment_status,
        "amount": paise_to_rupees(booking["amount_paise"]),
        "amount_paise": booking["amount_paise"],
        "passes": [
            {"kind": p["kind"], "token": p["token"], "created_at": _iso(p["created_at"]),
             "revoked_at": _iso(p["revoked_at"])}
            for p in passes
        ],
        "refunds": [refund_view(r) for r in refunds],
        # The passes used at the counter: when the car went out and came back.
        "scans": [{"kind": s["kind"], "result": s["result"],
                   "scanned_at": _iso(s["scanned_at"])} for s in scans],
        # Each mail with where it stands: a `failed` one was refused for good (see error).
        "notifications": [_mail(n) for n in notifications],
    }


def _mail(row) -> dict:
    mail = {"kind": row["kind"], "recipient": row["recipient"], "state": row["state"],
            "attempts": row["attempts"], "created_at": _iso(row["created_at"]),
            "sent_at": _iso(row["sent_at"])}
    if row["state"] == MailState.PENDING and row["attempts"]:
        mail["next_attempt_at"] = _iso(row["next_attempt_at"])
    if row["last_error"] and row["state"] != MailState.SENT:
        mail["error"] = row["last_error"]
    return mail


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
