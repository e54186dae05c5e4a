"""The mail outbox: one `notifications` row per mail, written in the caller's transaction.

Any service that makes a fact a customer must hear about (a capture, a failure, a
cancellation, a refund) calls `enqueue` inside the transaction that makes the fact; the
notifier's sender (notifier/mail_sender.py) delivers the row over SMTP afterwards, renders
subject and body from `kind`, the booking and `details`, and records the outcome on the row.
"""

from __future__ import annotations

import json

import asyncpg

from notifier.mail_templates import WORDING

KINDS = tuple(WORDING)  # a mail of any other kind could not be written


# ::text::jsonb so the caller's connection needs no jsonb codec of ours.
# The recipient is the booking's own customer, as the database says: never an address or
# a customer the caller was told about by someone else.
INSERT = (
    "INSERT INTO notifications (booking_id, customer_id, kind, dedupe_key, recipient, details)"
    " SELECT b.id, c.id, $3, $4, c.email, $5::text::jsonb"
    " FROM bookings b JOIN customers c ON c.id = b.customer_id WHERE b.id = $1 AND c.id = $2"
    " ON CONFLICT (dedupe_key) DO NOTHING RETURNING true"
)


class UnknownCustomer(LookupError):
    """enqueue() was given a customer who is not the booking's (or a booking we do not
    have)."""


async def enqueue(
    conn: asyncpg.Connection,
    *,
    booking_id: int,
    customer_id: int,
    kind: str,
    dedupe_key: str,
    details: dict,
) -> bool:
    """Add one mail to the outbox; True if added, False if `dedupe_key` was already there.

    `details` is what the template for `kind` reads (notifier/mail_templates.py):
    JSON-serialisable, and never a payment id or a secret (it is shown to ops).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind: {kind!r}")
    added = await conn.fetchval(
        INSERT,
        booking_id,
        customer_id,
        kind,
        dedupe_key,
        json.dumps(details, default=str),
    )
    if added:
        return True
    if not await conn.fetchval("SELECT true FROM notifications WHERE dedupe_key = $1",
                               dedupe_key):
        raise UnknownCustomer(customer_id)
    return False
