"""What the notifier does with `pass.scanned`: takes note, once, of a scan the database
holds (the event is a hint: a scan row missing means a forged or foreign event, and it is
only logged as such). Same contract as notifier/handlers.py: called inside the inbox
transaction."""

from __future__ import annotations

import logging
import uuid

import asyncpg

from shared.events import PassScanned
from shared.logging import log_ctx

log = logging.getLogger(__name__)


async def pass_scanned(
    conn: asyncpg.Connection, event: PassScanned, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    backed = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM pass_scans WHERE booking_id = $1 AND kind = $2"
        " AND result = $3)", event.booking_id, event.kind, event.result)
    ctx = log_ctx(booking_id=event.booking_id, kind=event.kind, event_id=str(event_id))
    if backed:
        log.info("booking %s at the counter", event.result, extra=ctx)
    else:
        log.warning("pass.scanned without a scan in the database: ignored", extra=ctx)


HANDLERS = {PassScanned: pass_scanned}
