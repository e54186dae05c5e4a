"""Razorpay's settlements API (list, one, recon) with its paging and errors; the controls
that settle (now, short, with a dispute's deduction, or a benchmark's month at once); and
the optional clock (SANDBOX_SETTLE_EVERY). Each settlement is sent as `settlement.processed`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from aiohttp import web

from razorpay_sandbox.errors import ApiError
from razorpay_sandbox.keys import BOOK, DISPATCHER, SETTINGS, STORE
from razorpay_sandbox.settlements import (
    Adjustment,
    Fees,
    Settlement,
    SettlementBook,
    SyntheticItems,
)
from razorpay_sandbox.validation import is_int, parse_json_object, query_int
from razorpay_sandbox.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

FIRST_TIMESTAMP, LAST_TIMESTAMP = 946684800, 4765046400
MAX_LIST_PAGE, MAX_RECON_PAGE = 100, 1000


def _page(query, maximum: int) -> tuple[int, int]:
    count = query_int(query, "count", 10)
    skip = query_int(query, "skip", 0)
    if count < 1:
        raise ApiError("The count must be at least 1.", field="count")
    if count > maximum:
        raise ApiError(f"The count may not be greater than {maximum}.", field="count")
    if skip < 0:
        raise ApiError("The skip must be at least 0.", field="skip")
    return count, skip


def _timestamp(query, name: str) -> int | None:
    message = f"{name} must be between {FIRST_TIMESTAMP} and {LAST_TIMESTAMP}"
    value = query_int(query, name, None, message)
    if value is not None and not FIRST_TIMESTAMP <= value <= LAST_TIMESTAMP:
        raise ApiError(message, field=name)
    return value


def _collection(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"entity": "collection", "count": len(items), "items": items}


async def list_settlements(request: web.Request) -> web.Response:
    count, skip = _page(request.query, MAX_LIST_PAGE)
    since, until = _timestamp(request.query, "from"), _timestamp(request.query, "to")
    chosen = request.app[BOOK].newest_first(since, until)[skip: skip + count]
    return web.json_response(_collection([s.entity() for s in chosen]))


async def fetch_settlement(request: web.Request) -> web.Response:
    settlement = request.app[BOOK].settlement(request.match_info["settlement_id"])
    return web.json_response(settlement.entity())


async def recon_combined(request: web.Request) -> web.Response:
    query = request.query
    if query.get("year") in (None, ""):
        raise ApiError("The year field is required.", field="year")
    if query.get("month") in (None, ""):
        raise ApiError("The month field is required.", field="month")
    year = query_int(query, "year", None, "The year must be 4 digits.")
    month = query_int(query, "month", None, "The month is not a valid month.")
    day = query_int(query, "day", None, "The day must be between 1 and 2 digits.")
    if not 1000 <= year <= 9999:
        raise ApiError("The year must be 4 digits.", field="year")
    if not 1 <= month <= 12:
        raise ApiError("The month is not a valid month.", field="month")
    if day is not None and not 1 <= day <= 31:
        raise ApiError("The day must be between 1 and 2 digits.", field="day")
    count, skip = _page(query, MAX_RECON_PAGE)
    items = request.app[BOOK].recon(year, month, day, skip, count)
    return web.json_response(_collection(items))


def announce(dispatcher: WebhookDispatcher, settlement: Settlement) -> None:
    dispatcher.publish_entity("settlement.processed", "settlement", settlement.entity(),
                              settlement.created_at)


def _adjustments(raw: Any) -> list[Adjustment]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise ApiError("adjustments must be a list of objects", field="adjustments")
    found = []
    for adjustment in raw:
        amount = adjustment.get("amount")
        if not is_int(amount) or amount == 0:
            raise ApiError("an adjustment's amount is a non-zero integer (paise)",
                           field="adjustments.amount")
        texts = {k: adjustment.get(k) for k in ("dispute_id", "payment_id", "description")}
        if not all(v is None or isinstance(v, str) for v in texts.values()):
            raise ApiError("dispute_id, payment_id and description are strings",
                           field="adjustments")
        found.append(Adjustment(amount=amount, **texts))
    return found


async def settle_now(request: web.Request) -> web.Response:
    """`{"short_by": paise, "adjustments": [{"amount", "dispute_id", "payment_id"}],
    "at": unix seconds, "webhook": bool}`: settles all that is due in one settlement."""
    body = parse_json_object(await request.read(), allow_empty=True)
    short_by, at, webhook = body.get("short_by", 0), body.get("at"), body.get("webhook", True)
    if not is_int(short_by) or short_by < 0:
        raise ApiError("short_by must be a non-negative integer (paise)", field="short_by")
    if at is not None and (not is_int(at) or not FIRST_TIMESTAMP <= at <= LAST_TIMESTAMP):
        raise ApiError("at must be a unix timestamp", field="at")
    if not isinstance(webhook, bool):
        raise ApiError("webhook must be true or false", field="webhook")
    settlement = request.app[BOOK].settle(
        short_by=short_by, adjustments=_adjustments(body.get("adjustments")), at=at)
    if settlement is None:
        return web.json_response({"settlement": None})
    if webhook:
        announce(request.app[DISPATCHER], settlement)
    return web.json_response({"settlement": settlement.entity(), "items": len(settlement.items)})


async def settle_month(request: web.Request) -> web.Response:
    """The benchmark's history in one call: `{"prefix", "per_day", "days", "amount",
    "first_day_at"}` makes one settlement a day of `per_day` captured payments (ids
    `pay_<prefix><n:09d>`, n from 1), no webhooks."""
    body = parse_json_object(await request.read())
    prefix, per_day, days = body.get("prefix"), body.get("per_day"), body.get("days")
    amount, start = body.get("amount"), body.get("first_day_at")
    if not isinstance(prefix, str) or not prefix.isalnum() or len(prefix) > 5:
        raise ApiError("prefix is up to 5 letters or digits", field="prefix")
    if not all(is_int(v) and v > 0 for v in (per_day, days, amount, start)):
        raise ApiError("per_day, days, amount and first_day_at are positive integers")
    book, made = request.app[BOOK], []
    for day in range(days):
        at = start + day * 86_400
        items = SyntheticItems(prefix, 1 + day * per_day, per_day, amount, at, book.fees)
        made.append(book.settle_synthetic(items, at).entity())
    return web.json_response({"settlements": made})


async def reset_settlements(request: web.Request) -> web.Response:
    request.app[BOOK].reset()
    return web.json_response({"status": "reset"})


async def settlement_clock(app: web.Application) -> AsyncIterator[None]:
    """The book, and with SANDBOX_SETTLE_EVERY set, a settlement of all that is due that
    often (sent as a webhook like any other)."""
    settings = app[SETTINGS]
    app[BOOK] = SettlementBook(app[STORE], Fees(settings.sandbox_fee_basis_points,
                                                settings.sandbox_gst_percent),
                               recon_offset=timedelta(
                                   minutes=settings.sandbox_recon_utc_offset_minutes))
    task = None
    if settings.sandbox_settle_every > 0:
        task = asyncio.create_task(_settle_every(app, settings.sandbox_settle_every))
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _settle_every(app: web.Application, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        settlement = app[BOOK].settle()
        if settlement is not None:
            announce(app[DISPATCHER], settlement)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/settlements", list_settlements)
    app.router.add_get("/v1/settlements/recon/combined", recon_combined)
    app.router.add_get("/v1/settlements/{settlement_id}", fetch_settlement)
    app.router.add_post("/sandbox/settlements", settle_now)
    app.router.add_post("/sandbox/settlements/month", settle_month)
    app.router.add_post("/sandbox/settlements/reset", reset_settlements)
