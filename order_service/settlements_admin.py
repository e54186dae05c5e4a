"""The admin API's settlements and ledger (Bearer ADMIN_API_TOKEN, as the rest of it):
GET /api/razorpay/settlements and GET /api/razorpay/ledger.csv?from=YYYY-MM-DD&to=YYYY-MM-DD."""

from __future__ import annotations

from datetime import UTC, date, datetime

from aiohttp import web

from order_service.admin import require_admin
from order_service.ledger import write_ledger
from order_service.settlement_schemas import BAD_DATE, BAD_PAGE, MAX_SKIP, SettlementAnswer
from shared.http import HttpError
from shared.money import paise_to_rupees
from shared.service import POOL
from shared.settlements import FEES, TAX

MAX_LEDGER_DAYS = 366

NEWEST = f"""
SELECT settlement_id, utr, amount_paise, {FEES} AS fees_paise, {TAX} AS tax_paise, settled_at,
       items, status, difference_paise
FROM settlements ORDER BY settled_at DESC, settlement_id LIMIT $1 OFFSET $2
"""


def settlement_answer(row) -> dict:
    difference = row["difference_paise"]
    return SettlementAnswer(
        settlement_id=row["settlement_id"],
        utr=row["utr"],
        amount=paise_to_rupees(row["amount_paise"]),
        fees=paise_to_rupees(row["fees_paise"]),
        tax=paise_to_rupees(row["tax_paise"]),
        settled_at=row["settled_at"].astimezone(UTC).isoformat(),
        items=row["items"],
        status=row["status"],
        matched=row["status"] == "matched",
        difference=None if difference is None else paise_to_rupees(difference),
    ).model_dump()


def _page(query) -> tuple[int, int]:
    try:
        count, skip = int(query.get("count", "100")), int(query.get("skip", "0"))
    except ValueError:
        raise HttpError(BAD_PAGE, 400) from None
    if not 1 <= count <= 1000 or not 0 <= skip <= MAX_SKIP:
        raise HttpError(BAD_PAGE, 400)
    return count, skip


async def list_settlements(request: web.Request) -> web.Response:
    require_admin(request)
    count, skip = _page(request.query)
    rows = await request.app[POOL].fetch(NEWEST, count, skip)
    return web.json_response({"settlements": [settlement_answer(r) for r in rows]})


def ledger_range(query, today: date) -> tuple[date, date]:
    try:  # by default the month so far
        first = date.fromisoformat(query["from"]) if query.get("from") else today.replace(day=1)
        last = date.fromisoformat(query["to"]) if query.get("to") else today
    except ValueError:
        raise HttpError(BAD_DATE, 400) from None
    if first > last or (last - first).days > MAX_LEDGER_DAYS:
        raise HttpError(BAD_DATE, 400)
    return first, last


async def ledger_csv(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    first, last = ledger_range(request.query, datetime.now(UTC).date())
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="ledger-{first}-{last}.csv"'})
    async with request.app[POOL].acquire() as conn:
        await response.prepare(request)
        await write_ledger(conn, first, last, response.write)
    await response.write_eof()
    return response
