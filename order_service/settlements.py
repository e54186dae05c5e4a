"""Settlement reconciliation: each settlement recorded pending (by its webhook or by the
daily poll of Razorpay's list) has its day's recon items fetched page by page and recorded
against our payments and refunds, then is matched or flagged with its difference. Captured
payments with no settlement item after SETTLEMENT_DUE_DAYS are flagged unsettled.

Memory stays flat whatever the day's count: one page is written while the next is fetched,
and nothing else is kept but the ids of the day's settlements."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg
from aiohttp import web

from shared import metrics
from shared.db import Autocommit, transaction
from shared.logging import log_ctx
from shared.outage import every
from shared.razorpay_client import RazorpayClient
from shared.service import POOL, RAZORPAY, SETTINGS
from shared.settings import Settings
from shared.settlement_state import SettlementStatus
from shared.settlements import (
    FEES,
    TAX,
    ItemColumns,
    Verdict,
    judge,
    record_items,
    record_settlement,
    settlement_from_entity,
)

log = logging.getLogger(__name__)

RECON_PAGE = 1000  # the most Razorpay's recon API gives at once
WRITERS = 2  # pages written at once, each on its own connection
LIST_PAGE = 100  # the most its settlements list gives at once
LEASE = timedelta(minutes=10)  # a claimed settlement is left alone this long by other replicas
RETRY = timedelta(minutes=30)  # a settlement whose items are not out yet is asked about again
FIRST_POLL_LOOKBACK = timedelta(days=7)
# Razorpay's docs do not say which clock its recon API's days follow; India's is likely. A
# settlement made after 18:30 UTC falls on the next day there.
INDIA = timedelta(hours=5, minutes=30)
# A captured payment is looked at for this long after it fell due: later than that it has
# been reported every day for weeks, and the check's cost stays that of a bounded range.
UNSETTLED_WINDOW = timedelta(days=60)
# Two months of captures, one index probe each: more than the pool's command timeout allows.
UNSETTLED_TIMEOUT_SECONDS = 25.0

# Pending settlements, and flagged ones judged again while young (shared/settlements.py).
CLAIM_DUE = """
UPDATE settlements SET next_check_at = now() + $2::interval
WHERE settlement_id IN (
    SELECT settlement_id FROM settlements
    WHERE next_check_at <= now()
    ORDER BY next_check_at LIMIT $1
    FOR UPDATE SKIP LOCKED)
RETURNING settlement_id, settled_at
"""
RETRY_LATER = ("UPDATE settlements SET next_check_at = now() + $2::interval"
               " WHERE settlement_id = $1 AND status = 'pending'")
OF_DAY = ("SELECT settlement_id FROM settlements"
          " WHERE settled_at >= $1 AND settled_at < $1 + interval '1 day'")
UNSETTLED = """
SELECT p.booking_id, p.amount_paise, p.captured_at FROM payments p
WHERE p.status = 'captured' AND p.captured_at < $1 AND p.captured_at >= $2
  AND NOT EXISTS (SELECT 1 FROM settlement_items i WHERE i.payment_ref = p.id)
ORDER BY p.captured_at
"""
POLLED_UNTIL = "SELECT listed_until FROM settlement_poll"
MARK_POLLED = """
INSERT INTO settlement_poll (listed_until) VALUES ($1)
ON CONFLICT (only_row) DO UPDATE SET listed_until = greatest(settlement_poll.listed_until, $1)
"""
MONTH_FEES = (f"SELECT COALESCE(sum({FEES}), 0) AS fees, COALESCE(sum({TAX}), 0) AS gst"
              " FROM settlements WHERE settled_at >= date_trunc('month', $1::timestamptz)")
UNMATCHED = "SELECT count(*) FROM settlements WHERE status = 'flagged'"


@dataclass
class DayResult:
    day: date
    items: int = 0
    unreadable: int = 0
    verdicts: list[Verdict] = field(default_factory=list)


async def reconcile_day(pool: asyncpg.Pool, razorpay: RazorpayClient, day: date) -> DayResult:
    """Records every recon item of `day`, then judges each of that day's settlements we
    know of (a settlement with no item out yet is asked about again later)."""
    result = DayResult(day)
    seen = await _record_pages(pool, razorpay, day, result)
    async with pool.acquire() as conn:
        of_day = await conn.fetch(OF_DAY, datetime(day.year, day.month, day.day, tzinfo=UTC))
        seen.update(r["settlement_id"] for r in of_day)
        for settlement_id in sorted(seen):
            async with transaction(conn):
                verdict = await judge(conn, settlement_id)
            result.verdicts.append(verdict)
            if verdict.status is None and verdict.items == 0:
                await Autocommit(conn).execute(RETRY_LATER, settlement_id, RETRY)
    if result.unreadable:
        log.warning("settlement recon: items we could not read were left out",
                    extra=log_ctx(day=day.isoformat(), unreadable=result.unreadable))
    for verdict in result.verdicts:
        _report(verdict)
    return result


async def _record_pages(pool: asyncpg.Pool, razorpay: RazorpayClient, day: date,
                        result: DayResult) -> set[str]:
    """The day's pages, as a pipeline: the next page is fetched while this one is read and
    up to WRITERS earlier ones are written, each on its own connection (the database has
    cores too). Returns the settlements the items named."""
    seen: set[str] = set()

    def fetch(skip: int) -> asyncio.Future:
        return asyncio.ensure_future(razorpay.settlement_recon(
            day.year, day.month, day.day, count=RECON_PAGE, skip=skip))

    async def write(columns: ItemColumns) -> None:
        async with pool.acquire() as conn:
            await record_items(conn, columns)

    skip, pending = 0, fetch(0)
    writing: set[asyncio.Task] = set()
    try:
        while pending is not None:
            page = await pending
            skip += RECON_PAGE
            pending = fetch(skip) if len(page) == RECON_PAGE else None
            columns = ItemColumns()
            for item in page:
                columns.add(item)
            del page
            seen.update(columns.columns[0])
            result.items += len(columns)
            result.unreadable += columns.unreadable
            if len(writing) >= WRITERS:
                done, writing = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a failed write fails the day: it is tried again whole
            writing.add(asyncio.create_task(write(columns)))
        for outcome in await asyncio.gather(*writing, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        writing.clear()
    finally:
        for task in [*writing, *([pending] if pending is not None else [])]:
            task.cancel()
        await asyncio.gather(*writing, return_exceptions=True)
    return seen


def _report(verdict: Verdict) -> None:
    if verdict.status is SettlementStatus.FLAGGED and verdict.changed:
        log.error("ALARM settlement does not add up", extra=log_ctx(
            settlement_id=verdict.settlement_id, items=verdict.items,
            difference_paise=verdict.difference_paise))


async def reconcile_due(pool: asyncpg.Pool, razorpay: RazorpayClient) -> list[DayResult]:
    """Every settlement whose check is due (pending, or flagged and judged again), one pass
    over each day they fall on."""
    async with pool.acquire() as conn:
        claimed = await Autocommit(conn).fetch(CLAIM_DUE, 100, LEASE)
    days = sorted({row["settled_at"].astimezone(UTC).date() for row in claimed})
    results = [await reconcile_day(pool, razorpay, day) for day in days]
    # One whose items its UTC date did not hold is looked for on its date in India too.
    unfound = {v.settlement_id for r in results for v in r.verdicts
               if v.status is None and v.items == 0}
    india = {(row["settled_at"].astimezone(UTC) + INDIA).date() for row in claimed
             if row["settlement_id"] in unfound}
    return results + [await reconcile_day(pool, razorpay, day)
                      for day in sorted(india - set(days))]


async def poll_settlements(pool: asyncpg.Pool, razorpay: RazorpayClient, now: datetime,
                           since: datetime | None = None) -> int:
    """Razorpay's settlements from `since` (default: a day before where the last whole poll
    read to, so a late-listed one is still seen), recorded pending when new: the ones whose
    webhook never came. Returns how many were new."""
    watermark = since is None
    if watermark:
        async with pool.acquire() as conn:
            polled = await conn.fetchval(POLLED_UNTIL)
        since = polled - timedelta(days=1) if polled is not None else now - FIRST_POLL_LOOKBACK
    new, skip = 0, 0
    while True:
        page = await razorpay.list_settlements(since=int(since.timestamp()), count=LIST_PAGE,
                                               skip=skip)
        async with pool.acquire() as conn:
            for entity in page:
                settlement = settlement_from_entity(entity)
                if settlement is None:
                    continue
                async with transaction(conn):
                    new += await record_settlement(conn, settlement, "poll")
        if len(page) < LIST_PAGE:
            break
        skip += LIST_PAGE
    if watermark:  # every page was read: the next poll need not go back further
        async with pool.acquire() as conn:
            await Autocommit(conn).execute(MARK_POLLED, now)
    return new


async def unsettled_payments(pool: asyncpg.Pool, now: datetime, due_days: int) -> list[dict]:
    """Captured payments with no settlement item `due_days` after their capture."""
    due_before = now - timedelta(days=due_days)
    async with pool.acquire() as conn:
        rows = await conn.fetch(UNSETTLED, due_before, due_before - UNSETTLED_WINDOW,
                                timeout=UNSETTLED_TIMEOUT_SECONDS)
    return [dict(r) for r in rows]


async def check_unsettled(pool: asyncpg.Pool, now: datetime, due_days: int) -> list[dict]:
    """`unsettled_payments`, reported: the gauge and an ALARM line naming the bookings."""
    rows = await unsettled_payments(pool, now, due_days)
    metrics.PAYMENTS_UNSETTLED.set(len(rows))
    if rows:
        log.error("ALARM captured payments not settled", extra=log_ctx(
            due_days=due_days, count=len(rows),
            booking_ids=[r["booking_id"] for r in rows[:50]]))
    return rows


async def refresh_gauges(pool: asyncpg.Pool, now: datetime) -> None:
    async with pool.acquire() as conn:
        metrics.SETTLEMENTS_UNMATCHED.set(await conn.fetchval(UNMATCHED))
        fees = await conn.fetchrow(MONTH_FEES, now)
    metrics.SETTLEMENT_FEES.set(fees["fees"])
    metrics.SETTLEMENT_GST.set(fees["gst"])


async def daily_pass(pool: asyncpg.Pool, razorpay: RazorpayClient, settings: Settings,
                     now: datetime) -> dict:
    """The poll, the due settlements, the unsettled check and the gauges, in that order."""
    new = await poll_settlements(pool, razorpay, now)
    days = await reconcile_due(pool, razorpay)
    unsettled = await check_unsettled(pool, now, settings.settlement_due_days)
    await refresh_gauges(pool, now)
    return {"new_settlements": new, "days": len(days),
            "items": sum(d.items for d in days), "unsettled": len(unsettled)}


async def run_settlements(app: web.Application) -> None:
    """Due settlements every SETTLEMENT_CHECK_SECONDS (a webhook's lands within that); the
    poll and the unsettled check every SETTLEMENT_POLL_SECONDS, first at start."""
    pool, razorpay, settings = app[POOL], app[RAZORPAY], app[SETTINGS]
    last_poll = None

    async def one_pass() -> None:
        nonlocal last_poll
        if last_poll is None or time.monotonic() - last_poll >= settings.settlement_poll_seconds:
            summary = await daily_pass(pool, razorpay, settings, datetime.now(UTC))
            last_poll = time.monotonic()
            log.info("settlement poll", extra=log_ctx(**summary))
        elif await reconcile_due(pool, razorpay):
            await refresh_gauges(pool, datetime.now(UTC))

    await every(settings.settlement_check_seconds, "settlement pass", log, one_pass)
