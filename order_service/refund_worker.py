"""Refunds nobody is talking to Razorpay about: the ones still `requested` (a payment
captured after its booking was cancelled, or a call whose answer was lost or that could not
reach Razorpay) are sent; the `pending` ones are polled with growing gaps (Razorpay's can
stay pending for days). Several replicas share the work: each row is claimed with a lease."""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

from shared.db import Autocommit
from shared.outage import every
from shared.razorpay_client import RazorpayClient
from shared.refunds import SUBMIT_LEASE, poll_refund, submit_refund
from shared.service import POOL, RAZORPAY, SETTINGS

log = logging.getLogger(__name__)

_DUE_REQUESTED = """
SELECT id FROM refunds WHERE status = 'requested' AND next_check_at <= now()
ORDER BY next_check_at LIMIT $1
"""

_CLAIM_PENDING = """
UPDATE refunds SET next_check_at = now() + $2::interval
WHERE id IN (
    SELECT id FROM refunds
    WHERE status = 'pending' AND next_check_at <= now() AND razorpay_refund_id IS NOT NULL
    ORDER BY next_check_at LIMIT $1
    FOR UPDATE SKIP LOCKED)
RETURNING *
"""


async def refund_pass(pool: asyncpg.Pool, razorpay: RazorpayClient, batch: int = 50) -> dict:
    """Send due requested refunds, poll due pending ones; returns counts."""
    summary = {"submitted": 0, "polled": 0, "settled": 0}
    async with pool.acquire() as conn:
        requested = await conn.fetch(_DUE_REQUESTED, batch)
    for row in requested:
        # submit_refund claims each row itself: a replica that got there first wins
        after = await submit_refund(pool, razorpay, row["id"], source="reconcile")
        summary["submitted"] += after is not None and after["status"] != "requested"
    async with pool.acquire() as conn:
        pending = await Autocommit(conn).fetch(_CLAIM_PENDING, batch, SUBMIT_LEASE)
    for row in pending:
        summary["polled"] += 1
        summary["settled"] += await poll_refund(pool, razorpay, row)
    return summary


async def run_refund_worker(app: web.Application) -> None:
    async def one_pass() -> None:
        summary = await refund_pass(app[POOL], app[RAZORPAY])
        if summary["submitted"] or summary["polled"]:
            log.info("refund pass", extra={"ctx": summary})

    await every(app[SETTINGS].refund_poll_seconds, "refund pass", log, one_pass)
