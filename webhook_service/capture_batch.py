"""Captures that arrive together commit together: group commit for webhook ingest.

A first `payment.captured` is the delivery Razorpay sends for every paid booking. Under load
many are in flight at once; each alone costs a transaction of four round trips and a commit
that waits on the disk. Those in flight together share one (shared/coalesce.py): one
statement moves every payment and records every delivery, one round trip writes their
events, one commit. Each delivery is answered only after that commit, as before.

A capture with nobody to share with goes alone, as it would without batching. The batch
takes only what it can apply without judgement: a delivery it does not move
(unknown order, duplicate, stale, amount mismatch) comes back as None and the caller
applies it alone (webhook_service/handlers.py), where each of those cases has its answer.
A batch that cannot commit as a whole (a unique index refuses one capture, a key recorded
meanwhile, a deadlock with another batch, a payload the database cannot store) rolls back,
and all of its deliveries go alone too: only the one at fault then fails. The database
being away is every delivery's answer, as it would be alone.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import asyncpg

from shared.coalesce import Coalescer, first_of_each
from shared.outbox import outbox_transaction
from shared.payment_state import PaymentOutcome, PaymentStatus, allowed_sources
from shared.payments import captures_recorded, record_captures_and

MAX_BATCH = 64
IN_FLIGHT = 2  # batches per process: one commits (waits on the disk) while the next runs

# The deliveries, recorded as applied by the captures' own statement; parameters from $6:
# event keys, event names, order ids, payment ids, payloads, indexed by the moved row's n.
INSERT_APPLIED_DELIVERIES = (
    "INSERT INTO webhook_events (event_key, event_type, razorpay_order_id,"
    " razorpay_payment_id, outcome, payload)"
    " SELECT ($6::text[])[n], ($7::text[])[n], ($8::text[])[n], ($9::text[])[n], 'applied',"
    " (($10::text[])[n])::jsonb FROM moved ON CONFLICT (event_key) DO NOTHING RETURNING true"
)
CAPTURES_WITH_DELIVERIES = record_captures_and(INSERT_APPLIED_DELIVERIES)
_SOURCES = [s.value for s in allowed_sources(PaymentStatus.CAPTURED)]


@dataclass(frozen=True, eq=False)
class Capture:
    """One delivery of a capture: its event key, the outcome it reports, the delivery row's
    (event name, order id, payment id) as handlers.delivery_columns gives them, its payload."""

    key: str
    outcome: PaymentOutcome
    columns: tuple[str, str | None, str | None]
    payload: dict
    correlation_id: str | None


class BatchRefused(Exception):
    """The batch could not commit as a whole (rolled back): apply its deliveries alone."""


def capture_batches(pool: asyncpg.Pool) -> Coalescer[Capture, str | None]:
    return Coalescer(functools.partial(apply_captures, pool), max_batch=MAX_BATCH,
                     in_flight=IN_FLIGHT)


async def apply_captures(pool: asyncpg.Pool, captures: list[Capture]) -> list[str | None]:
    """"applied" for each delivery this batch applied and recorded; None for the rest."""
    # One per event key and per order (twins go alone and find what this one did), in
    # order-id order, so that two batches lock their payments in the same order.
    batch = sorted((captures[n] for n in first_of_each(
        captures, lambda c: c.key, lambda c: c.outcome.order_id)),
        key=lambda c: c.outcome.order_id)
    if len(batch) < 2:
        # Alone, the lone path's single-row statement is the cheaper one (pgbench: the
        # batch statement with one row runs ~13% fewer transactions a second).
        return [None] * len(captures)
    outcomes = [c.outcome for c in batch]
    async with outbox_transaction(pool) as conn:
        rows = await conn.fetch(
            CAPTURES_WITH_DELIVERIES,
            [o.order_id for o in outcomes], [o.payment_id for o in outcomes],
            [o.amount_paise for o in outcomes], [o.currency for o in outcomes], _SOURCES,
            [c.key for c in batch], *([c.columns[i] for c in batch] for i in range(3)),
            [json.dumps(c.payload) for c in batch])
        if rows and rows[0]["also_count"] != len(rows):
            # A key recorded before (a racing twin, or an earlier delivery that found no
            # order): that one is a duplicate, which only the lone path can say.
            raise BatchRefused
        moved = [(row, batch[row["n"] - 1]) for row in rows]
        await captures_recorded(conn, [(row, c.outcome, c.correlation_id) for row, c in moved],
                                "webhook")
    applied = {id(c) for _, c in moved}
    return ["applied" if id(c) in applied else None for c in captures]
