"""The passes table: each booking's two QR passes, each image rendered at most once.

A pass is its signed token (cheap: an HMAC), written with the booking's confirmation.
Rendering its PNG is the costliest CPU work on the payment path, so it happens only when
someone needs the picture: verify-payment answering the browser, or the notifier's mail
sender attaching the passes. The first of them renders and stores the image; everyone
after reads it: verify returns exactly the images the notifier mails, whoever was first.
"""

from __future__ import annotations

import asyncio

import asyncpg

from shared.db import Autocommit
from shared.passes import PASS_KINDS, pass_token, qr_data_url

Passes = dict[str, tuple[str, str]]  # kind -> (token, data URL)

STORED_PASSES = "SELECT kind, token, qr_data_url FROM passes WHERE booking_id = $1"
# Passes admit someone to a car: only for a booking that is paid (a captured payment whose
# money was not all given back, by refunds or chargebacks) and not cancelled. The same
# condition guards the write, so a cancellation committed between the check and the write
# still stops it.
_PAID = """EXISTS (SELECT FROM bookings b WHERE b.id = $1 AND b.status <> 'cancelled'
                  AND EXISTS (SELECT FROM payments paid
                              WHERE paid.booking_id = b.id AND paid.status = 'captured'
                                AND paid.refunded_paise
                                    + (SELECT paise FROM charged_back(paid.razorpay_payment_id))
                                    < paid.amount_paise))"""
BOOKING_PAID = f"SELECT {_PAID}"
# Why not, when it is not: cancelled, refunded (the money went back), or unpaid.
WHY_NOT_PAID = """
SELECT CASE WHEN b.status = 'cancelled' THEN 'cancelled'
            WHEN EXISTS (SELECT FROM payments p WHERE p.booking_id = b.id
                         AND p.status = 'captured') THEN 'refunded'
            ELSE 'unpaid' END
FROM bookings b WHERE b.id = $1
"""
# A racer's row or image wins: rendering is deterministic, so it is the same picture. An
# image is stored only on a row holding the token it shows (a row written meanwhile by a
# process signing with another secret, mid-rotation, keeps its own token: drawn again).
STORE_IMAGES = f"""
INSERT INTO passes (booking_id, kind, token, qr_data_url)
SELECT $1, kind, token, url FROM unnest($2::text[], $3::text[], $4::text[]) AS p(kind, token, url)
WHERE {_PAID}
ON CONFLICT (booking_id, kind) DO UPDATE SET qr_data_url = EXCLUDED.qr_data_url
WHERE passes.qr_data_url IS NULL AND passes.token = EXCLUDED.token
RETURNING kind, token, qr_data_url
"""


class BookingNotPaid(Exception):
    """No passes for a booking that is cancelled, refunded whole or not paid: `why`."""

    def __init__(self, booking_id: int, why: str):
        super().__init__(booking_id, why)
        self.why = why


def pass_tokens(booking_id: int, secret: str) -> tuple[list[str], list[str]]:
    """Kinds and tokens of a booking's passes, for a caller that writes the rows itself
    (images NULL: rendered on demand by `issue_passes`)."""
    return list(PASS_KINDS), [pass_token(booking_id, kind, secret) for kind in PASS_KINDS]


async def stored_passes(conn: asyncpg.Connection, booking_id: int) -> dict:
    """kind -> (token, data URL or None if not rendered yet)."""
    rows = await conn.fetch(STORED_PASSES, booking_id)
    return {row["kind"]: (row["token"], row["qr_data_url"]) for row in rows}


async def issue_passes(conn: asyncpg.Connection, booking_id: int, secret: str,
                       *, again: bool = True) -> Passes:
    """Both passes of a booking as stored, images included; renders (off the event loop)
    and stores whatever is missing first: a row, or a row's image.

    Two issuers racing both render, but a stored image is never replaced, and both answer
    with the stored one. BookingNotPaid for a booking cancelled, refunded whole or not paid.
    """
    if not await conn.fetchval(BOOKING_PAID, booking_id):
        raise BookingNotPaid(booking_id, await conn.fetchval(WHY_NOT_PAID, booking_id))
    stored = await stored_passes(conn, booking_id)
    missing = [k for k in PASS_KINDS if stored.get(k, (None, None))[1] is None]
    if not missing:
        return stored
    # A stored row's image shows its own token (whatever secret signed it back then)
    tokens = [stored[k][0] if k in stored else pass_token(booking_id, k, secret)
              for k in missing]
    images = await asyncio.to_thread(_render, tokens)  # CPU: off the event loop
    written = await Autocommit(conn).fetch(STORE_IMAGES, booking_id, missing, tokens, images)
    if len(written) < len(missing):
        # A racer's images won (theirs, then), or its rows came first with tokens of their
        # own: once more, drawing from what is stored now.
        if again:
            return await issue_passes(conn, booking_id, secret, again=False)
        return await stored_passes(conn, booking_id)
    return {**stored, **{row["kind"]: (row["token"], row["qr_data_url"]) for row in written}}


def _render(tokens: list[str]) -> list[str]:
    return [qr_data_url(token) for token in tokens]
