"""`a6pay recon [--date YYYY-MM-DD]` and `a6pay ledger --from … --to … > month.csv`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, date, datetime, time, timedelta

from shared.db import create_pool
from shared.money import paise_to_rupees
from shared.settings import Settings
from shared.settlements import FEES, TAX

COMMANDS = frozenset({"recon", "ledger"})

OF_DAY = f"""
SELECT settlement_id, utr, amount_paise, {FEES} AS fees_paise, {TAX} AS tax_paise, settled_at,
       items, status, difference_paise
FROM settlements WHERE settled_at >= $1 AND settled_at < $1 + interval '1 day'
ORDER BY settled_at, settlement_id
"""


def add_commands(sub) -> None:
    recon = sub.add_parser(
        "recon", help="reconcile a day's settlements; exit 1 if any is flagged or unsettled")
    recon.add_argument("--date", type=date.fromisoformat, default=None,
                       help="YYYY-MM-DD (default: today, UTC)")
    ledger = sub.add_parser("ledger", help="the ledger as CSV on stdout")
    ledger.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    ledger.add_argument("--to", dest="last", type=date.fromisoformat, required=True)


async def recon(settings: Settings, day: date) -> dict:
    """Polls Razorpay's list, records and judges `day`'s items, and lists the payments
    unsettled as of that day's end."""
    from order_service.settlements import poll_settlements, reconcile_day, unsettled_payments
    from order_service.settlements_admin import settlement_answer
    from shared.razorpay_client import RazorpayClient

    pool = await create_pool(settings)
    razorpay = RazorpayClient(settings)
    try:
        start = datetime.combine(day, time(), UTC)
        await poll_settlements(pool, razorpay, datetime.now(UTC), since=start)
        result = await reconcile_day(pool, razorpay, day)
        rows = await pool.fetch(OF_DAY, start)
        unsettled = await unsettled_payments(pool, start + timedelta(days=1),
                                             settings.settlement_due_days)
    finally:
        razorpay.close()
        await pool.close()
    settlements = [settlement_answer(r) for r in rows]
    flagged = [s for s in settlements if s["status"] == "flagged"]
    return {
        "date": day.isoformat(),
        "items": result.items,
        "settlements": settlements,
        "flagged": len(flagged),
        "unsettled": [{"booking_id": r["booking_id"], "amount": paise_to_rupees(r["amount_paise"]),
                       "captured_at": r["captured_at"].isoformat()} for r in unsettled],
    }


async def ledger(settings: Settings, first: date, last: date) -> None:
    from order_service.ledger import write_ledger

    out = sys.stdout.buffer

    async def write(chunk: bytes) -> None:
        out.write(chunk)

    pool = await create_pool(settings)
    try:
        async with pool.acquire() as conn:
            await write_ledger(conn, first, last, write)
    finally:
        out.flush()
        await pool.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "ledger":
        if args.first > args.last:
            print(json.dumps({"error": "--from is after --to"}))
            return 2
        asyncio.run(ledger(settings, args.first, args.last))
        return 0
    result = asyncio.run(recon(settings, args.date or datetime.now(UTC).date()))
    print(json.dumps(result, default=str))
    return 1 if result["flagged"] or result["unsettled"] else 0
