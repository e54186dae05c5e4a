"""What the notifier does with each event: plain functions over an asyncpg connection.

No aio-pika or aiohttp here. Each event's inbox row (consumer, event id, and a digest of
the fact it reports) is written in the same transaction as its effect, so a redelivery
(same event id, same fact) is a no-op, and every effect is also guarded by a unique
constraint or a conditional UPDATE, so the same fact under another event id is one too.

The broker is not believed: every handler reads the row its event claims (the payment
captured or failed, the booking cancelled, the refund in that state, the scan made) and
raises UnbackedEvent when the database does not hold it, which rolls the inbox row back
with everything else. Mails take their recipient and figures from the database. An event
id a forger reused on another fact is not a duplicate of the real event: the inbox row's
fact differs, so the real event still takes effect (and the effects are idempotent).

`payment.captured`, the event every paid booking brings, is one statement (CONFIRM_BOOKINGS):
one round trip, no explicit transaction. Events in hand together share that statement (the
consumer's group commit, shared/coalesce.py); one alone is a batch of one.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg

from notifier import refund_handlers, scan_handlers
from notifier.backing import UnbackedEvent, fact_of
from notifier.mail_outbox import enqueue
from shared.booking_state import BookingStatus
from shared.coalesce import in_rounds
from shared.db import Autocommit, transaction
from shared.events import Event, OrderCreated, PaymentCaptured, PaymentFailed
from shared.logging import log_ctx
from shared.pass_store import pass_tokens
from shared.payment_state import PaymentStatus

log = logging.getLogger(__name__)

CONSUMER = "notifier"

# A row for this id with another fact is the mark of a forger's reuse: taken over, and the
# event applied (its effect is idempotent on its own). CONFIRM_BOOKINGS's `fresh` does the
# same for captures.
INSERT_INBOX = (
    "INSERT INTO inbox (consumer, event_id, fact) VALUES ($1, $2, $3)"
    " ON CONFLICT (consumer, event_id) DO UPDATE SET fact = EXCLUDED.fact"
    " WHERE inbox.fact <> EXCLUDED.fact RETURNING true"
)
# The attempt a payment.failed reports: its order, of that booking and customer.
FAILED_ATTEMPT = (
    "SELECT status, razorpay_order_id, razorpay_payment_id, failure_reason FROM payments"
    " WHERE razorpay_order_id = $1 AND booking_id = $2 AND customer_id = $3"
)
# The order an order.created names, for that booking and customer.
ORDER_ON_RECORD = (
    "SELECT status FROM payments WHERE razorpay_order_id = $1 AND booking_id = $2"
    " AND customer_id = $3"
)
BOOKING_DETAILS = (
    "SELECT b.id, b.status, b.amount_paise, b.start_date, b.end_date, b.customer_id,"
    " c.name AS customer_name, c.email, car.name AS car_name"
    " FROM bookings b JOIN customers c ON c.id = b.customer_id"
    " JOIN cars car ON car.id = b.car_id WHERE b.id = $1"
)

# payment.captured in one statement (atomic: all of it commits or none of it), one input
# row per event:
# - `facts`: the booking, and whether a capture our own services recorded stands behind the
#   event (`held` not NULL; the broker is not a source of truth: the event is written in
#   the same transaction as the capture, so a real one always finds it);
# - `fresh`: the inbox row, only for a backed event of a booking we have (a refused event
#   leaves nothing behind);
# - `confirmed`: the confirmation, forward-only (pending → confirmed): a cancellation that
#   committed first wins, one in flight is waited for, then seen;
# - only for a booking this statement confirmed: its passes (tokens; the images are
#   rendered when someone first needs them, shared/pass_store.py) and its confirmation
#   mail (the mail outbox row notifier/mail_outbox.py's `enqueue` would write), due $13
#   later: verify-payment, usually running for the customer's browser right then, draws
#   the passes meanwhile, so the mail carries them instead of drawing them again. A
#   payment whose money all went back first (`held` false: processed refunds,
#   chargebacks; its capture event came late) confirms the booking with its passes revoked
#   and no mail, as if the refund had come after. Refunds still in progress count for
#   nothing here, as in refund_handlers.FULLY_REFUNDED: revoked_at is never cleared, so
#   one that fails later must not have revoked the passes; when it is processed instead,
#   refund.processed revokes them.
# One row per input, in order; at most one input per event id and per booking (the
# caller's to ensure, `confirm_bookings`). The arrays reach unnest through a MATERIALIZED
# CTE, where the planner cannot count them: every call's plan then costs the same, and
# PostgreSQL keeps one generic plan instead of planning each call anew. That plan may be
# made while the tables are small, so the lookups are one index probe per row (a LATERAL
# subquery kept apart by OFFSET 0, a scalar subquery), never a join it could turn into a
# scan of the whole table.
CONFIRM_BOOKINGS = """
WITH arrays (a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12) AS MATERIALIZED (
    SELECT $2::uuid[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[],
           $8::text[], $9::bigint[], $10::text[], $11::text[], $12::bytea[]
), d AS (
    SELECT d.* FROM arrays, unnest(a2, a3, a4, a5, a6, a7, a8, a12) WITH ORDINALITY
        AS d(event_id, booking_id, customer_id, order_id, payment_id, amount_paise, details,
             fact, n)
), facts AS (
    SELECT d.n, d.event_id, d.fact, b.id, b.status,
           (SELECT (SELECT COALESCE(sum(x.amount_paise), 0) FROM refunds x
                    WHERE x.payment_id = p.id AND x.duplicate_payment_id IS NULL
                      AND x.status = 'processed')
                   + (SELECT paise FROM charged_back(p.razorpay_payment_id)) < p.amount_paise
            FROM payments p WHERE p.razorpay_order_id = d.order_id
            AND p.booking_id = b.id AND p.customer_id = d.customer_id
            AND p.razorpay_payment_id = d.payment_id AND p.amount_paise = d.amount_paise
            AND p.status = 'captured') AS held
    FROM d LEFT JOIN LATERAL (
        SELECT id, status FROM bookings WHERE id = d.booking_id OFFSET 0) b ON true
), fresh AS (
    INSERT INTO inbox (consumer, event_id, fact) SELECT $1, facts.event_id, facts.fact
    FROM facts WHERE facts.held IS NOT NULL
    ON CONFLICT (consumer, event_id) DO UPDATE SET fact = EXCLUDED.fact
    WHERE inbox.fact <> EXCLUDED.fact
    RETURNING event_id
), confirmed AS (
    UPDATE bookings SET status = 'confirmed', confirmed_at = now()
    FROM facts
    WHERE bookings.id = facts.id AND bookings.status = 'pending'
      AND facts.event_id IN (SELECT event_id FROM fresh)
    RETURNING bookings.id, bookings.customer_id, facts.n, facts.held
), passes AS (
    INSERT INTO passes (booking_id, kind, token, revoked_at)
    SELECT c.id, p.kind, p.token, CASE WHEN NOT c.held THEN now() END
    FROM confirmed c, arrays, unnest(a9, a10, a11) AS p(booking_id, kind, token)
    WHERE p.booking_id = c.id
    ON CONFLICT (booking_id, kind) DO NOTHING
), mail AS (
    INSERT INTO notifications (booking_id, customer_id, kind, dedupe_key, recipient, details,
                               next_attempt_at)
    SELECT c.id, cu.id, 'payment_confirmed', 'payment_confirmed:' || c.id, cu.email,
           d.details::jsonb, now() + $13::interval
    FROM confirmed c JOIN customers cu ON cu.id = c.customer_id JOIN d ON d.n = c.n
    WHERE c.held
    ON CONFLICT (dedupe_key) DO NOTHING
)
SELECT f.status, f.held IS NOT NULL AS backed, f.event_id IN (SELECT event_id FROM fresh) AS fresh,
       f.n IN (SELECT n FROM confirmed) AS confirmed
FROM facts f ORDER BY f.n
"""


class BookingNotFound(LookupError):
    """The event names a booking we do not have: retried, then dead-lettered."""


class UnbackedCapture(UnbackedEvent):
    """A payment.captured that no captured payment in our database stands behind."""

    alarm = "unbacked_capture"


Apply = Callable[..., Awaitable[bool]]  # (conn, event, event_id, *, pass_secret) -> fresh


async def apply_event(
    conn: asyncpg.Connection, event: Event, event_id: uuid.UUID, *, pass_secret: str
) -> bool:
    """Inbox + effect, atomically. False when this event id was already applied."""
    return await HANDLERS[type(event)](conn, event, event_id, pass_secret=pass_secret)


def in_inbox_transaction(effect: Callable[..., Awaitable[None]]) -> Apply:
    """An effect of several statements: the inbox row first, then the effect, in one
    transaction."""

    async def apply(conn, event, event_id, *, pass_secret: str) -> bool:
        async with transaction(conn):
            if not await conn.fetchval(INSERT_INBOX, CONSUMER, event_id, fact_of(event)):
                return False
            await effect(conn, event, event_id, pass_secret=pass_secret)
        return True

    return apply


Capture = tuple[PaymentCaptured, uuid.UUID]


async def confirm_bookings(conn: asyncpg.Connection, captures: list[Capture], *,
                           pass_secret: str, mail_after: timedelta) -> list[asyncpg.Record]:
    """CONFIRM_BOOKINGS's row for each (event, event id), in order; a statement holds at
    most one per event id and per booking. Each confirmation mail is due `mail_after`."""
    return await in_rounds(captures, functools.partial(_confirm, conn, pass_secret, mail_after),
                           lambda c: c[1], lambda c: c[0].booking_id,
                           order=lambda c: c[0].booking_id)


async def _confirm(conn: asyncpg.Connection, pass_secret: str, mail_after: timedelta,
                   captures: list[Capture]) -> list[asyncpg.Record]:
    passes = [(event.booking_id, kind, token) for event, _ in captures
              for kind, token in zip(*pass_tokens(event.booking_id, pass_secret), strict=True)]
    return await Autocommit(conn).fetch(
        CONFIRM_BOOKINGS, CONSUMER, [event_id for _, event_id in captures],
        *([getattr(event, name) for event, _ in captures] for name in (
            "booking_id", "customer_id", "order_id", "payment_id", "amount_paise")),
        [json.dumps({"amount_paise": event.amount_paise}) for event, _ in captures],
        *([row[i] for row in passes] for i in range(3)),
        [fact_of(event) for event, _ in captures], mail_after)


def captured_outcome(result: asyncpg.Record, event: PaymentCaptured, event_id: uuid.UUID
                     ) -> bool:
    """What CONFIRM_BOOKINGS's row for an event means: fresh (True) or applied before
    (False); raises for a booking we do not have and for a capture nobody recorded."""
    if result["status"] is None:
        raise BookingNotFound(event.booking_id)
    if not result["backed"]:
        raise UnbackedCapture(event.booking_id)
    if not result["fresh"]:
        return False  # this event id was applied before
    if result["confirmed"]:
        log.info("booking confirmed", extra=_ctx(event, event_id))
    elif result["status"] != BookingStatus.CONFIRMED:
        # Paid after cancellation: no passes, no confirmation; it is refunded automatically
        # (shared/payments.py wrote that refund with the capture).
        log.warning("capture for a cancelled booking", extra=_ctx(event, event_id))
    return True


async def payment_failed(
    conn: asyncpg.Connection, event: PaymentFailed, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    # NO KEY UPDATE: what an UPDATE takes; waits for a cancellation, not for FK checks
    booking = await conn.fetchrow(BOOKING_DETAILS + " FOR NO KEY UPDATE OF b", event.booking_id)
    if booking is None:
        raise BookingNotFound(event.booking_id)
    payment = await conn.fetchrow(
        FAILED_ATTEMPT, event.order_id, event.booking_id, event.customer_id)
    # The failure is written with its event; an order never failed was never reported so.
    if payment is None or payment["status"] == PaymentStatus.CREATED:
        raise UnbackedEvent(event.booking_id)
    if (payment["status"] != PaymentStatus.FAILED
            or booking["status"] != BookingStatus.PENDING):
        # Events are not ordered: an old attempt's failure after the booking was paid
        # (or cancelled), or after a late authorisation, must not tell the customer
        # their payment failed.
        log.info("failure for a settled payment ignored", extra=_ctx(event, event_id))
        return
    # One mail per failed attempt on record: the key and the reason are the database's,
    # so a sender choosing payment ids or reasons mails nobody anything new.
    attempt = payment["razorpay_payment_id"] or payment["razorpay_order_id"]
    await enqueue(
        conn,
        booking_id=booking["id"],
        customer_id=booking["customer_id"],
        kind="payment_failed",
        dedupe_key=f"payment_failed:{booking['id']}:{attempt}",
        # Razorpay's reason is for the customer; the attempt's ids stay out of the mail.
        details={"reason": payment["failure_reason"]},
    )
    log.info("payment failure notified", extra=_ctx(event, event_id))


async def order_created(
    conn: asyncpg.Connection, event: OrderCreated, event_id: uuid.UUID, *, pass_secret: str
) -> bool:
    """Nothing to do but remember it was seen, for an order we made."""
    if await conn.fetchval(ORDER_ON_RECORD, event.order_id, event.booking_id,
                           event.customer_id) is None:
        raise UnbackedEvent(event.booking_id)
    return bool(await Autocommit(conn).fetchval(INSERT_INBOX, CONSUMER, event_id,
                                                fact_of(event)))


HANDLERS: dict[type[Event], Apply] = {
    PaymentFailed: in_inbox_transaction(payment_failed),
    OrderCreated: order_created,
    **{kind: in_inbox_transaction(effect) for kind, effect in refund_handlers.HANDLERS.items()},
    **{kind: in_inbox_transaction(effect) for kind, effect in scan_handlers.HANDLERS.items()},
}


def _ctx(event: Event, event_id: uuid.UUID) -> dict:
    # Booking and event ids only: never payment or order ids.
    return log_ctx(
        event_type=event.routing_key,
        event_id=str(event_id),
        booking_id=getattr(event, "booking_id", None),
    )
