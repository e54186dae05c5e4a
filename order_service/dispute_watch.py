"""What keeps the money after capture in view, each tick: disputes linked to captures seen
after them, the ops mail for each new dispute (to OPS_EMAIL, never the customer), the open
disputes' gauges (the alert on respond_by reads them), and the refunds Razorpay lists that
we have not seen (a dashboard refund whose webhooks were lost)."""

from __future__ import annotations

import logging
import time

import asyncpg
from aiohttp import web

from order_service.refund_truth import record_refund_entities
from shared import metrics
from shared.db import Autocommit, transaction
from shared.dispute_state import OPEN_STATUSES, DisputeStatus
from shared.disputes import LINK_DISPUTES
from shared.outage import every
from shared.razorpay_client import RazorpayClient, RazorpayError
from shared.service import POOL, RAZORPAY, SETTINGS

log = logging.getLogger(__name__)

# The mail and the mark in one statement: each dispute is mailed once (the dedupe key).
# Only a dispute still open is mailed: the mail asks for evidence by respond_by, and one
# first heard already decided (won, lost, closed) asks nothing of anyone. It is marked all
# the same, so the watch never looks at it again.
_MAIL_OPS = """
WITH due AS (
    SELECT d.id, d.booking_id, b.customer_id, d.amount_paise, d.phase, d.reason_code,
           d.respond_by, d.status
    FROM disputes d JOIN bookings b ON b.id = d.booking_id
    WHERE d.ops_notified_at IS NULL AND d.booking_id IS NOT NULL
    ORDER BY d.id LIMIT 100
    FOR UPDATE OF d SKIP LOCKED
), mailed AS (
    INSERT INTO notifications (booking_id, customer_id, kind, dedupe_key, recipient, details)
    SELECT booking_id, customer_id, 'dispute_opened', 'dispute_opened:' || id, $1,
           jsonb_build_object('amount_paise', amount_paise, 'phase', phase,
                              'reason_code', reason_code,
                              'respond_by', to_char(respond_by AT TIME ZONE 'UTC',
                                                    'YYYY-MM-DD HH24:MI "UTC"'))
    FROM due WHERE status = ANY($2::text[])
    ON CONFLICT (dedupe_key) DO NOTHING
)
UPDATE disputes SET ops_notified_at = now() WHERE id IN (SELECT id FROM due)
"""

_OPEN = """
SELECT count(*) AS open,
       min(respond_by) FILTER (WHERE status = ANY($2::text[])) AS nearest
FROM disputes WHERE status = ANY($1::text[])
"""
_AWAITING_US = [DisputeStatus.OPEN.value, DisputeStatus.ACTION_REQUIRED.value]


async def watch_disputes(pool: asyncpg.Pool, ops_email: str) -> None:
    async with pool.acquire() as conn:
        await Autocommit(conn).execute(LINK_DISPUTES)
        async with transaction(conn):
            await conn.execute(_MAIL_OPS, ops_email, OPEN_STATUSES)
        row = await conn.fetchrow(_OPEN, OPEN_STATUSES, _AWAITING_US)
    metrics.DISPUTES_OPEN.set(row["open"])
    nearest = row["nearest"]
    metrics.DISPUTE_RESPOND_BY.set(
        nearest.timestamp() - time.time() if nearest is not None else float("inf"))


async def sweep_refunds(pool: asyncpg.Pool, razorpay: RazorpayClient) -> int:
    try:
        listed = await razorpay.recent_refunds()
    except RazorpayError as exc:
        log.warning("refund sweep: Razorpay not asked: %s", type(exc).__name__)
        return 0
    return await record_refund_entities(pool, listed)


async def run_dispute_watch(app: web.Application) -> None:
    settings = app[SETTINGS]
    next_sweep = 0.0

    async def one_pass() -> None:
        nonlocal next_sweep
        await watch_disputes(app[POOL], settings.ops_email)
        if time.monotonic() >= next_sweep:
            next_sweep = time.monotonic() + settings.reconcile_poll_seconds
            found = await sweep_refunds(app[POOL], app[RAZORPAY])
            if found:
                log.info("refunds made at Razorpay found", extra={"ctx": {"found": found}})

    await every(settings.dispute_watch_seconds, "dispute watch", log, one_pass)
