"""Evidence for a dispute, from our own records only: the booking, the payment, the passes
(issued, revoked, used at the counter when recorded), the confirmation mail, the refunds, and
the cancellation policy. Gathered in one read; rendered by order_service/evidence_pdf.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.money import paise_to_rupees

CANCELLATION_POLICY = (
    "Bookings may be cancelled by A6 Cars on the customer's request before the collection"
    " date; the amount paid, less any cancellation fee stated at cancellation, is refunded to"
    " the original payment method. A booking whose car was collected is not refundable."
)

_BOOKING = """
SELECT b.id, b.status, b.start_date, b.end_date, b.amount_paise, b.created_at,
       b.confirmed_at, b.cancelled_at, b.cancellation_reason,
       c.name AS customer_name, c.email AS customer_email, c.phone AS customer_phone,
       car.name AS car_name, car.registration AS car_registration
FROM bookings b JOIN customers c ON c.id = b.customer_id JOIN cars car ON car.id = b.car_id
WHERE b.id = $1
"""


@dataclass
class EvidenceRecords:
    booking: asyncpg.Record
    payment: asyncpg.Record
    payment_method: str | None
    passes: list[asyncpg.Record]
    confirmation: asyncpg.Record | None
    refunds: list[asyncpg.Record]


async def gather_evidence(
    conn: asyncpg.Connection, booking_id: int, payment_id: int, payment_method: str | None
) -> EvidenceRecords:
    return EvidenceRecords(
        booking=await conn.fetchrow(_BOOKING, booking_id),
        payment=await conn.fetchrow("SELECT * FROM payments WHERE id = $1", payment_id),
        payment_method=payment_method,
        passes=await conn.fetch(
            "SELECT p.kind, p.created_at, p.revoked_at, s.scanned_at FROM passes p"
            " LEFT JOIN pass_scans s ON s.booking_id = p.booking_id AND s.kind = p.kind"
            " WHERE p.booking_id = $1 ORDER BY p.kind", booking_id),
        confirmation=await conn.fetchrow(
            "SELECT message_id, sent_at, recipient FROM notifications WHERE booking_id = $1"
            " AND kind = 'payment_confirmed' ORDER BY id LIMIT 1", booking_id),
        refunds=await conn.fetch(
            "SELECT amount_paise, status, cause, created_at, processed_at FROM refunds"
            " WHERE booking_id = $1 ORDER BY id", booking_id),
    )


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def inr(paise: int) -> str:
    return f"INR {paise_to_rupees(paise):,.2f}"


def summary(records: EvidenceRecords) -> str:
    """The contest's summary (Razorpay takes at most 1000 characters); names the booking."""
    b, p = records.booking, records.payment
    issued = [r for r in records.passes if r["created_at"]]
    used = {r["kind"]: r["scanned_at"] for r in records.passes if r["scanned_at"]}
    text = (
        f"A6 Cars booking #{b['id']}: {b['car_name']} rented by {b['customer_name']} from"
        f" {b['start_date']} to {b['end_date']}, paid {inr(p['amount_paise'])}"
        f" (captured {when(p['captured_at'])}). The booking was confirmed"
        f" {when(b['confirmed_at'])} and the customer was sent {len(issued)} signed QR passes"
        f" (collection and return) by e-mail"
        + (f" at {when(records.confirmation['sent_at'])}" if records.confirmation else "")
        + (f". The car was collected with the customer's pass at {when(used['collection'])}"
           if "collection" in used else "")
        + (f" and returned with it at {when(used['return'])}" if "return" in used else "")
        + f". {_service(records, used)}; the attached record lists the booking, the"
        " payment, the passes, the confirmation mail, refunds and our cancellation policy."
    )
    return text[:1000]


def _service(records: EvidenceRecords, used: dict) -> str:
    """What our records say of the service itself: the bank reads this as our claim, so it
    claims only what the booking's state and the counter's scans show."""
    b = records.booking
    if b["status"] == "cancelled":
        reason = f" ({b['cancellation_reason'][:200]})" if b["cancellation_reason"] else ""
        return (f"The booking was cancelled {when(b['cancelled_at'])}{reason}"
                + (" after the car was collected" if "collection" in used else
                   ", before the car was picked up"))
    if "collection" in used:
        return "The service was provided as booked"
    revoked = [r["revoked_at"] for r in records.passes if r["revoked_at"]]
    if revoked:
        return f"The passes were revoked {when(min(revoked))} and never used"
    return "The car has not been picked up yet"
