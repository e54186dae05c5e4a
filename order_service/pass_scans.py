"""Passes at the counter: `scan_pass` records one use of a pass and moves its booking
confirmed -> collected -> returned (shared/booking_state.py). No aiohttp here.

One transaction: lock the booking row, read what the database says about the pass, judge
(a pure function, which `a6pay check-pass` also uses, without the lock or the write), then
the conditional UPDATE of the booking, the scan row and the `pass.scanned` event. Scans of
one booking queue on its row lock, so of two racing scans of a pass one records it and the
other is told when it was used; the scan table's primary key says the same to any writer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from shared.booking_state import BookingStatus, allowed_sources
from shared.events import PassScanned
from shared.logging import log_ctx
from shared.outbox import add_event, outbox_transaction
from shared.pass_tokens import verify_pass_token
from shared.settings import Settings

log = logging.getLogger(__name__)

PRODUCER = "order_service"
RESULTS = {"collection": BookingStatus.COLLECTED, "return": BookingStatus.RETURNED}
NOT_OURS = "Not an A6 Cars pass: the code was not issued by us"
# A car already out comes back whatever happened to the money: the office settles that.
GONE = {
    ("cancelled", "collection"): "Booking cancelled: do not hand over the car",
    ("cancelled", "return"): "Booking cancelled: take the keys, call the office",
    ("refunded", "collection"): "Booking refunded: do not hand over the car",
    ("refunded", "return"): "Booking refunded: take the keys, call the office",
    ("revoked", "collection"): "Pass revoked: do not hand over the car",
    ("revoked", "return"): "Pass revoked: take the keys, call the office",
}

# A second statement, so that after waiting for a racer's lock it reads the racer's scan.
LOCK_BOOKING = "SELECT 1 FROM bookings WHERE id = $1 FOR UPDATE"
# `refunded`: all the money went back, by refunds or by disputes lost (chargebacks).
FACTS = """
SELECT b.status, b.customer_id, b.start_date, b.end_date, c.name AS car,
       cu.name AS customer_name, p.token, p.revoked_at, s.scanned_at AS used_at,
       EXISTS (SELECT FROM payments pay WHERE pay.booking_id = b.id
               AND pay.status = 'captured' AND pay.refunded_paise
                   + (SELECT paise FROM charged_back(pay.razorpay_payment_id))
                   >= pay.amount_paise)
           AS refunded,
       now() AS now
FROM bookings b JOIN cars c ON c.id = b.car_id JOIN customers cu ON cu.id = b.customer_id
LEFT JOIN passes p ON p.booking_id = b.id AND p.kind = $2
LEFT JOIN pass_scans s ON s.booking_id = b.id AND s.kind = $2
WHERE b.id = $1
"""
RECORD_SCAN = """
WITH moved AS (
    UPDATE bookings SET status = $3,
        collected_at = CASE WHEN $3 = 'collected' THEN now() ELSE collected_at END,
        returned_at = CASE WHEN $3 = 'returned' THEN now() ELSE returned_at END
    WHERE id = $1 AND status = ANY($4::text[])
    RETURNING id
)
INSERT INTO pass_scans (booking_id, kind, result, request_id)
SELECT id, $2, $3, $5 FROM moved
RETURNING scanned_at
"""


@dataclass(frozen=True)
class Answer:
    """What the counter is told: an HTTP status and its JSON body (always a `message`)."""

    status: int
    body: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """When a pass may be used: the rental dates, whole days in the counter's time zone,
    widened by the grace period on both sides."""

    opens: datetime
    closes: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.opens <= moment < self.closes


@dataclass(frozen=True)
class Counter:
    """Where the counter stands: the grace period around the rental dates, and the time
    zone those dates (and the times staff read) are in."""

    grace: timedelta
    zone: ZoneInfo

    def window(self, start: date, end: date) -> Window:
        first = datetime.combine(start, time(0), self.zone)
        after_last = datetime.combine(end + timedelta(days=1), time(0), self.zone)
        return Window(first - self.grace, after_last + self.grace)

    def when(self, moment: datetime) -> str:
        """A time as staff read it: the counter's local time, to the minute."""
        return f"{moment.astimezone(self.zone):%d %b %Y %H:%M} ({self.zone.key})"


def judge(booking_id: int, kind: str, token: str, facts, counter: Counter) -> Answer | None:
    """None if this scan may be recorded now, else the refusal. Pure: `facts` is the FACTS
    row (or None)."""
    if facts is None or (facts["token"] is not None and facts["token"] != token):
        return Answer(400, {"message": NOT_OURS})  # signed by us, but never issued as is
    about = booking_facts(booking_id, kind, facts)
    status = BookingStatus(facts["status"])

    def refuse(code: int, message: str, **more) -> Answer:
        return Answer(code, {"message": message, **about, **more})

    if status is BookingStatus.CANCELLED:
        return refuse(410, GONE["cancelled", kind])
    if facts["refunded"]:
        return refuse(410, GONE["refunded", kind])
    if facts["revoked_at"] is not None:
        return refuse(410, GONE["revoked", kind], revoked_at=facts["revoked_at"].isoformat())
    if facts["token"] is None or status is BookingStatus.PENDING:
        return refuse(409, "Booking not paid yet: no passes are valid for it")
    if facts["used_at"] is not None:
        return refuse(409, f"Pass already used at {counter.when(facts['used_at'])}",
                      used_at=facts["used_at"].isoformat())
    if kind == "return" and status is BookingStatus.CONFIRMED:
        return refuse(409, "Car not collected yet: scan the collection pass first")
    window = counter.window(facts["start_date"], facts["end_date"])
    if facts["now"] not in window:
        return refuse(409, f"Outside the rental window: this pass scans from"
                      f" {counter.when(window.opens)} until {counter.when(window.closes)}",
                      window_opens=window.opens.isoformat(),
                      window_closes=window.closes.isoformat())
    if status not in allowed_sources(RESULTS[kind]):
        return refuse(409, f"Booking is {status.value}")
    return None


def booking_facts(booking_id: int, kind: str, facts) -> dict:
    """What the counter sees of the booking, whatever the answer."""
    return {"booking_id": booking_id, "kind": kind, "car": facts["car"],
            "customer_name": facts["customer_name"],
            "start_date": facts["start_date"].isoformat(),
            "end_date": facts["end_date"].isoformat()}


def counter_for(settings: Settings) -> Counter:
    return Counter(timedelta(hours=settings.pass_grace_hours), ZoneInfo(settings.counter_timezone))


async def scan_pass(pool: asyncpg.Pool, settings: Settings, token: str,
                    request_id: str | None = None) -> Answer:
    """Record one use of the pass `token` (a string, already checked to be one)."""
    checked = verify_pass_token(token, *settings.pass_secrets)
    if checked is None:
        return Answer(400, {"message": NOT_OURS})
    booking_id, kind = checked
    result = RESULTS[kind]
    async with outbox_transaction(pool) as conn:
        await conn.execute(LOCK_BOOKING, booking_id)
        facts = await conn.fetchrow(FACTS, booking_id, kind)
        refusal = judge(booking_id, kind, token, facts, counter_for(settings))
        if refusal is not None:
            log.info("pass refused", extra=log_ctx(booking_id=booking_id, kind=kind,
                                                   status=refusal.status))
            return refusal
        scanned_at = await conn.fetchval(
            RECORD_SCAN, booking_id, kind, result.value,
            [s.value for s in allowed_sources(result)], request_id)
        if scanned_at is None:  # not under our lock: a writer that skipped it moved first
            return Answer(409, {"message": "Booking changed meanwhile: scan again",
                                **booking_facts(booking_id, kind, facts)})
        await add_event(conn, PassScanned(
            booking_id=booking_id, customer_id=facts["customer_id"], kind=kind,
            result=result.value, scanned_at=scanned_at), PRODUCER, request_id)
    log.info("pass scanned", extra=log_ctx(booking_id=booking_id, kind=kind,
                                           result=result.value))
    return Answer(200, {"message": next_step(result), **booking_facts(booking_id, kind, facts),
                        "result": result.value, "scanned_at": scanned_at.isoformat()})


def next_step(result: BookingStatus) -> str:
    if result is BookingStatus.COLLECTED:
        return "Collection recorded: hand over the car"
    return "Return recorded: take the keys back"


async def check_pass(pool: asyncpg.Pool, settings: Settings, token: str) -> dict:
    """A read-only look (`a6pay check-pass`): is the pass ours and still good (issued, not
    revoked, not used, its booking paid and not cancelled), and what a scan would answer
    now (`scan`: the window and the order of the passes count there). Records nothing."""
    checked = verify_pass_token(token, *settings.pass_secrets)
    async with pool.acquire() as conn:
        facts = checked and await conn.fetchrow(FACTS, *checked)
    if not checked or facts is None or facts["token"] not in (None, token):
        return {"valid": False, "reason": "not a pass we signed", "message": NOT_OURS}
    booking_id, kind = checked
    refusal = judge(booking_id, kind, token, facts, counter_for(settings))
    good = (facts["token"] is not None and facts["revoked_at"] is None
            and not facts["refunded"] and facts["used_at"] is None
            and facts["status"] in (BookingStatus.CONFIRMED, BookingStatus.COLLECTED))
    answer = {"valid": good, "booking_status": facts["status"],
              **booking_facts(booking_id, kind, facts),
              "used_at": facts["used_at"] and facts["used_at"].isoformat(),
              "scan": {"status": 200, "message": f"Would record: {RESULTS[kind].value}"}
              if refusal is None else {"status": refusal.status,
                                       "message": refusal.body["message"]}}
    if facts["revoked_at"] is not None:
        answer.update(revoked=True, reason="revoked", revoked_at=facts["revoked_at"].isoformat())
    return answer
