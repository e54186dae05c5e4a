"""What the notifier does with `pass.scanned`: takes note, once, of a scan the database
holds (the event is a hint: a scan row missing means a forged or foreign event, refused as
UnbackedEvent). Same contract as notifier/handlers.py: called inside the inbox
transaction."""

from __future__ import annotations

import logging
import uuid

import asyncpg

from notifier.backing import UnbackedEvent
from shared.events import PassScanned
from shared.logging import log_ctx

log = logging.getLogger(__name__)

SCAN_ON_RECORD = (
    "SELECT EXISTS (SELECT FROM pass_scans s JOIN bookings b ON b.id = s.booking_id"
    " WHERE s.booking_id = $1 AND s.kind = $2 AND s.result = $3 AND b.customer_id = $4)"
)


async def pass_scanned(
    conn: asyncpg.Connection, event: PassScanned, event_id: uuid.UUID, *, pass_secret: str
) -> None:
    backed = await conn.fetchval(
        SCAN_ON_RECORD, event.booking_id, event.kind, event.result, event.customer_id)
    if not backed:
        raise UnbackedEvent(event.booking_id)
    log.info("booking %s at the counter", event.result, extra=log_ctx(
        booking_id=event.booking_id, kind=event.kind, event_id=str(event_id)))


HANDLERS = {PassScanned: pass_scanned}
