"""payment.captured events in hand together share one statement: group commit for the
notifier, as webhook_service/capture_batch.py is for ingest.

The consumer holds up to `NOTIFIER_PREFETCH` messages at once, each in its own task. Those
that are captures wait for the statement in flight and go together in the next one
(shared/coalesce.py): CONFIRM_BOOKINGS with one row each, one round trip, one commit. Each
message is acknowledged only after that commit, with the outcome its own row says
(notifier/handlers.py: captured_outcome), so a refused or unknown booking is refused alone.

A second event for an event id or a booking already in the batch goes alone, after it, and
so does a capture with nobody to share with (the single-event statement is the cheaper one).
A batch that fails for any reason but the database being away is not the others' fault:
each of its events runs alone, and only the one at fault fails.
"""

from __future__ import annotations

import functools
import uuid

import asyncpg

from notifier.handlers import confirm_bookings
from shared.coalesce import Coalescer, first_of_each
from shared.events import PaymentCaptured

MAX_BATCH = 64
IN_FLIGHT = 2  # statements per process: one commits (waits on the disk) while the next runs

Capture = tuple[PaymentCaptured, uuid.UUID]


def confirm_batches(pool: asyncpg.Pool, pass_secret: str
                    ) -> Coalescer[Capture, asyncpg.Record | None]:
    return Coalescer(functools.partial(confirm_together, pool, pass_secret),
                     max_batch=MAX_BATCH, in_flight=IN_FLIGHT)


async def confirm_together(pool: asyncpg.Pool, pass_secret: str, captures: list[Capture]
                           ) -> list[asyncpg.Record | None]:
    """CONFIRM_BOOKINGS's row for each capture, or None for one to apply alone: a twin
    of another in the batch (same event id or booking), or a capture with nobody to share
    with. Bookings in id order, so that two statements in flight lock them in the same
    order."""
    batch = first_of_each(captures, lambda c: c[1], lambda c: c[0].booking_id)
    results: list[asyncpg.Record | None] = [None] * len(captures)
    if len(batch) < 2:
        return results  # alone: CONFIRM_BOOKING is the cheaper statement for one event
    batch.sort(key=lambda n: captures[n][0].booking_id)
    async with pool.acquire() as conn:
        rows = await confirm_bookings(conn, [captures[n] for n in batch],
                                      pass_secret=pass_secret)
    for n, row in zip(batch, rows, strict=True):
        results[n] = row
    return results
