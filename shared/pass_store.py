"""The passes table: each booking's two QR passes, rendered at most once and then read.

Rendering a PNG is the costliest CPU work on the payment path, so whoever needs the passes
first (the notifier confirming the booking, or verify-payment answering the browser)
renders and stores them, and everyone after reads the stored images: verify returns
exactly the images the notifier keeps, whichever of the two got there first.
"""

from __future__ import annotations

import asyncio

import asyncpg

from shared.passes import PASS_KINDS, passes_for

Passes = dict[str, tuple[str, str]]  # kind -> (token, data URL)

STORED_PASSES = "SELECT kind, token, qr_data_url FROM passes WHERE booking_id = $1"
INSERT_PASS = (
    "INSERT INTO passes (booking_id, kind, token, qr_data_url) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (booking_id, kind) DO NOTHING"
)


async def stored_passes(conn: asyncpg.Connection, booking_id: int) -> Passes:
    rows = await conn.fetch(STORED_PASSES, booking_id)
    return {row["kind"]: (row["token"], row["qr_data_url"]) for row in rows}


async def issue_passes(conn: asyncpg.Connection, booking_id: int, secret: str) -> Passes:
    """Both passes of a booking as stored; renders and stores them first if missing.

    Two issuers racing both render, but the unique (booking_id, kind) keeps one image
    per pass, and both answer with the stored one.
    """
    stored = await stored_passes(conn, booking_id)
    if await _store_missing(conn, booking_id, secret, stored):
        stored = await stored_passes(conn, booking_id)  # whichever racer's rows won
    return stored


async def ensure_passes(conn: asyncpg.Connection, booking_id: int, secret: str) -> None:
    """`issue_passes` for a caller that needs them stored, not shown (no read-back)."""
    await _store_missing(conn, booking_id, secret, await stored_passes(conn, booking_id))


async def _store_missing(conn, booking_id: int, secret: str, stored: Passes) -> bool:
    """Renders and inserts the kinds not stored yet; False when nothing was missing."""
    missing = [kind for kind in PASS_KINDS if kind not in stored]
    if not missing:
        return False
    rendered = await asyncio.to_thread(passes_for, booking_id, secret)  # CPU: off the loop
    await conn.executemany(
        INSERT_PASS,
        [(booking_id, kind, *rendered[kind]) for kind in missing],
    )
    return True
