"""Settlements against the real database, the sandbox (through the official SDK) and the
real webhook_service app: a day matched item by item, a short one flagged, a payment never
settled flagged after the due days, a redelivered and a missed `settlement.processed`, the
ledger checked against the sandbox's recon items, and `a6pay recon`'s exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import sys
from datetime import UTC, date, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from order_service import cancellations
from order_service.app import create_app as create_order_service
from order_service.ledger import write_ledger
from order_service.settlements import (
    check_unsettled,
    poll_settlements,
    reconcile_day,
    reconcile_due,
    refresh_gauges,
)
from shared import metrics
from shared.duplicate_payments import refund_second_capture
from shared.outbox import outbox_transaction
from shared.razorpay_client import RazorpayClient
from shared.razorpay_map import outcome_from_payment
from shared.refunds import poll_refund, submit_refund
from shared.settlements import ItemColumns, judge, record_items
from testkit import infra
from testkit.inprocess import running_sandbox
from tests.support.refunds import control, open_order, pay_and_record
from webhook_service.app import create_app as create_webhook_service

ADMIN = "settlement-admin-token"


def start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def at(day: date) -> int:
    """Noon, UTC, that day: when the sandbox is told to date a settlement."""
    return int((start(day) + timedelta(hours=12)).timestamp())


@pytest.fixture(scope="module")
async def own(base_settings):
    async with infra.own_database(base_settings, admin_api_token=ADMIN) as (settings, pool):
        yield settings, pool


@pytest.fixture
def pool(own):
    return own[1]


@pytest.fixture
async def webhook_url(own):
    """The real webhook_service app, in this process, for the sandbox to post to."""
    port = infra.free_port()
    runner = web.AppRunner(create_webhook_service(own[0], relay=False))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/api/razorpay/webhook"
    await runner.cleanup()


@pytest.fixture
async def settings(own, webhook_url):
    """A fresh sandbox per test: each settles only what that test paid."""
    async with running_sandbox(own[0], sandbox_refund_delay_seconds=0,
                               sandbox_webhook_url=webhook_url) as settings:
        yield settings


@pytest.fixture
async def razorpay(settings):
    client = RazorpayClient(settings)
    yield client
    client.close()


async def paid(pool, razorpay, settings, amount_paise=150_000) -> dict:
    booking_id, order_id = await open_order(pool, razorpay, amount_paise)
    await pay_and_record(pool, razorpay, settings, order_id)
    return dict(await pool.fetchrow(
        "SELECT id, booking_id, razorpay_payment_id, razorpay_order_id FROM payments"
        " WHERE booking_id = $1 AND status = 'captured'", booking_id))


async def processed_refund(pool, razorpay, booking_id: int, amount_paise: int) -> dict:
    await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=amount_paise)

    async def processed():
        row = await pool.fetchrow("SELECT * FROM refunds WHERE booking_id = $1", booking_id)
        await poll_refund(pool, razorpay, row)
        return await pool.fetchrow(
            "SELECT * FROM refunds WHERE booking_id = $1 AND status = 'processed'", booking_id)

    return dict(await infra.eventually(processed))


async def settle(settings, **body) -> dict:
    return await control(settings, "/sandbox/settlements", body)


async def settlement_row(pool, settlement_id):
    return await pool.fetchrow("SELECT * FROM settlements WHERE settlement_id = $1",
                               settlement_id)


async def recon_items(razorpay, day: date) -> list[dict]:
    return await razorpay.settlement_recon(day.year, day.month, day.day, count=1000, skip=0)


async def a_settled_day(pool, razorpay, settings, day: date) -> dict:
    """Two payments, a processed refund of one, a lost dispute on the other: settled on
    `day` (webhook off: the poll finds it)."""
    first, second = await paid(pool, razorpay, settings), await paid(pool, razorpay, settings)
    refund = await processed_refund(pool, razorpay, first["booking_id"], 40_000)
    dispute = {"amount": -150_000, "dispute_id": "disp_" + second["razorpay_payment_id"][4:],
               "payment_id": second["razorpay_payment_id"]}
    made = await settle(settings, at=at(day), adjustments=[dispute], webhook=False)
    return {"payments": [first, second], "refund": refund, "dispute": dispute, **made}


async def test_a_days_settlement_is_matched_item_by_item(pool, razorpay, settings):
    day = date(2026, 1, 10)
    made = await a_settled_day(pool, razorpay, settings, day)
    settlement = made["settlement"]
    # 2 × ₹1500 less 2% + 18% GST each, less the ₹400 refund, less the lost ₹1500
    assert settlement["amount"] == 2 * (150_000 - 3_540) - 40_000 - 150_000
    assert (settlement["fees"], settlement["tax"]) == (0, 0)  # a normal one's, as Razorpay's

    assert await poll_settlements(pool, razorpay, datetime.now(UTC), since=start(day)) >= 1
    result = await reconcile_day(pool, razorpay, day)
    ours = [v for v in result.verdicts if v.settlement_id == settlement["id"]]
    assert [(v.status, v.items, v.difference_paise) for v in ours] == [("matched", 4, 0)]

    items = {r["entity_id"]: r for r in await pool.fetch(
        "SELECT * FROM settlement_items WHERE settlement_id = $1", settlement["id"])}
    first, second = made["payments"]
    assert items[first["razorpay_payment_id"]]["payment_ref"] == first["id"]
    assert items[second["razorpay_payment_id"]]["payment_ref"] == second["id"]
    assert (items[first["razorpay_payment_id"]]["fee_paise"],
            items[first["razorpay_payment_id"]]["tax_paise"]) == (3_540, 540)
    assert items[made["refund"]["razorpay_refund_id"]]["refund_ref"] == made["refund"]["id"]
    # what the settlement cost, from its items: the month's gauges say the same
    row = await settlement_row(pool, settlement["id"])
    assert (row["item_fees_paise"], row["item_tax_paise"]) == (2 * 3_540, 2 * 540)
    await refresh_gauges(pool, start(day))
    assert metrics.REGISTRY.get_sample_value("a6pay_settlement_fees_paise") >= 2 * 3_540
    assert metrics.REGISTRY.get_sample_value("a6pay_settlement_gst_paise") >= 2 * 540
    (adjustment,) = [i for i in items.values() if i["type"] == "adjustment"]
    assert (adjustment["dispute_id"], adjustment["debit_paise"], adjustment["payment_ref"]) == (
        made["dispute"]["dispute_id"], 150_000, None)

    # the same day again (a redelivery, a second replica): nothing changes
    before = await settlement_row(pool, settlement["id"])
    await reconcile_day(pool, razorpay, day)
    assert await settlement_row(pool, settlement["id"]) == before
    assert await pool.fetchval("SELECT count(*) FROM settlement_items WHERE settlement_id = $1",
                               settlement["id"]) == 4


async def test_a_short_settlement_is_flagged_with_its_difference(pool, razorpay, settings,
                                                                 caplog):
    day = date(2026, 1, 11)
    await paid(pool, razorpay, settings)
    made = await settle(settings, at=at(day), short_by=1_234, webhook=False)
    await poll_settlements(pool, razorpay, datetime.now(UTC), since=start(day))
    with caplog.at_level(logging.ERROR, logger="order_service.settlements"):
        await reconcile_day(pool, razorpay, day)
    row = await settlement_row(pool, made["settlement"]["id"])
    assert (row["status"], row["difference_paise"], row["items"]) == ("flagged", 1_234, 1)
    assert any("ALARM settlement does not add up" in r.getMessage() for r in caplog.records)

    async with TestClient(TestServer(create_order_service(
            settings, relay=False, reconciler=False))) as client:
        answer = await client.get("/api/razorpay/settlements",
                                  headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status == 200
        listed = {s["settlement_id"]: s for s in (await answer.json())["settlements"]}
    assert listed[made["settlement"]["id"]] | {"settled_at": None} == {
        "settlement_id": made["settlement"]["id"], "utr": made["settlement"]["utr"],
        "amount": (150_000 - 3_540 - 1_234) / 100, "fees": 35.4, "tax": 5.4,
        "settled_at": None, "items": 1, "status": "flagged", "matched": False,
        "difference": 12.34}
    assert listed[made["settlement"]["id"]]["settled_at"] == "2026-01-11T12:00:00+00:00"


async def test_a_payment_never_settled_is_flagged_after_the_due_days(pool, razorpay,
                                                                     settings, caplog):
    payment = await paid(pool, razorpay, settings)
    captured_at = await pool.fetchval("SELECT captured_at FROM payments WHERE id = $1",
                                      payment["id"])
    due_days = settings.settlement_due_days

    early = await check_unsettled(pool, captured_at + timedelta(days=due_days - 1), due_days)
    assert payment["booking_id"] not in [r["booking_id"] for r in early]

    with caplog.at_level(logging.ERROR, logger="order_service.settlements"):
        late = await check_unsettled(pool, captured_at + timedelta(days=due_days, minutes=1),
                                     due_days)
    assert payment["booking_id"] in [r["booking_id"] for r in late]
    assert metrics.REGISTRY.get_sample_value("a6pay_payments_unsettled") == len(late)
    assert any("ALARM captured payments not settled" in r.getMessage() for r in caplog.records)

    # once settled, it is no longer flagged
    await settle(settings, at=at(date(2026, 1, 9)), webhook=False)
    await poll_settlements(pool, razorpay, datetime.now(UTC), since=start(date(2026, 1, 9)))
    await reconcile_day(pool, razorpay, date(2026, 1, 9))
    settled = await check_unsettled(pool, captured_at + timedelta(days=due_days, minutes=1),
                                    due_days)
    assert payment["booking_id"] not in [r["booking_id"] for r in settled]


async def sandbox_deliveries(settings) -> list[dict]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{settings.razorpay_base_url}/sandbox/webhooks") as resp:
        return [d for d in (await resp.json())["items"] if d["event"] == "settlement.processed"]


async def test_a_redelivered_webhook_changes_nothing_and_the_poll_finds_a_missed_one(
        pool, razorpay, settings):
    await paid(pool, razorpay, settings)
    heard = (await settle(settings, at=at(date(2026, 1, 12))))["settlement"]

    async def recorded():
        return await settlement_row(pool, heard["id"])

    assert (await infra.eventually(recorded))["source"] == "webhook"
    await reconcile_due(pool, razorpay)
    matched = await settlement_row(pool, heard["id"])
    assert (matched["status"], matched["items"]) == ("matched", 1)

    (delivery,) = await sandbox_deliveries(settings)
    await control(settings, "/sandbox/webhooks/redeliver", {"event_id": delivery["event_id"]})

    async def redelivered():
        (again,) = await sandbox_deliveries(settings)
        return again["attempts"] == 2 and again["state"] == "delivered"

    await infra.eventually(redelivered)
    assert await settlement_row(pool, heard["id"]) == matched
    assert await pool.fetchval(
        "SELECT count(*) FROM webhook_events WHERE event_type = 'settlement.processed'"
        " AND payload->'payload'->'settlement'->'entity'->>'id' = $1", heard["id"]) == 1

    await paid(pool, razorpay, settings)
    missed = (await settle(settings, at=at(date(2026, 2, 1)), webhook=False))["settlement"]
    assert await settlement_row(pool, missed["id"]) is None
    # heard after the missed one: its webhook must not move the poll past the missed one
    await paid(pool, razorpay, settings)
    later = (await settle(settings, at=at(date(2026, 2, 3))))["settlement"]
    await infra.eventually(lambda: settlement_row(pool, later["id"]))
    assert await poll_settlements(pool, razorpay, start(date(2026, 2, 4))) == 1
    assert (await settlement_row(pool, missed["id"]))["source"] == "poll"
    await reconcile_due(pool, razorpay)
    assert (await settlement_row(pool, missed["id"]))["status"] == "matched"
    # the next day's poll reads from a day before where this one stopped
    await paid(pool, razorpay, settings)
    next_missed = (await settle(settings, at=at(date(2026, 2, 4)), webhook=False))["settlement"]
    assert await poll_settlements(pool, razorpay, start(date(2026, 2, 5))) == 1
    assert (await settlement_row(pool, next_missed["id"]))["source"] == "poll"


def rupees(paise: int) -> str:
    return f"{paise / 100:.2f}"


async def test_the_ledger_rows_match_the_sandboxs_recon_items(pool, razorpay, settings):
    day = date(2026, 1, 13)
    made = await a_settled_day(pool, razorpay, settings, day)
    await poll_settlements(pool, razorpay, datetime.now(UTC), since=start(day))
    await reconcile_day(pool, razorpay, day)
    recon = {i["entity_id"]: i for i in await recon_items(razorpay, day)
             if i["settlement_id"] == made["settlement"]["id"]}
    assert len(recon) == 4

    today = datetime.now(UTC).date()
    async with TestClient(TestServer(create_order_service(
            settings, relay=False, reconciler=False))) as client:
        answer = await client.get("/api/razorpay/ledger.csv",
                                  params={"from": today.isoformat(), "to": today.isoformat()},
                                  headers={"Authorization": f"Bearer {ADMIN}"})
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/csv")
        text = await answer.text()
        refused = await client.get("/api/razorpay/ledger.csv", params={"from": "2026-13-01"},
                                   headers={"Authorization": f"Bearer {ADMIN}"})
        assert refused.status == 400 and "message" in await refused.json()
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == ["date", "booking_id", "order_id", "payment_id", "type",
                                 "amount", "fee", "tax", "net", "settlement_id", "utr"]
    rows = list(reader)
    by_payment = {(r["type"], r["payment_id"]): r for r in rows}

    for payment in made["payments"]:
        item = recon[payment["razorpay_payment_id"]]
        row = by_payment[("payment", payment["razorpay_payment_id"])]
        assert row == {
            "date": today.isoformat(), "booking_id": str(payment["booking_id"]),
            "order_id": item["order_id"], "payment_id": item["entity_id"], "type": "payment",
            "amount": rupees(item["amount"]), "fee": rupees(item["fee"]),
            "tax": rupees(item["tax"]), "net": rupees(item["credit"]),
            "settlement_id": item["settlement_id"], "utr": item["settlement_utr"]}
    refund_item = recon[made["refund"]["razorpay_refund_id"]]
    row = by_payment[("refund", refund_item["payment_id"])]
    assert (row["amount"], row["net"], row["settlement_id"], row["utr"]) == (
        rupees(-refund_item["debit"]), rupees(-refund_item["debit"]),
        refund_item["settlement_id"], refund_item["settlement_utr"])
    (dispute_item,) = [i for i in recon.values() if i["dispute_id"]]
    row = by_payment[("dispute_deduction", dispute_item["payment_id"])]
    assert (row["amount"], row["net"], row["booking_id"], row["settlement_id"]) == (
        rupees(-dispute_item["debit"]), rupees(-dispute_item["debit"]),
        str(made["payments"][1]["booking_id"]), dispute_item["settlement_id"])


async def test_the_ledger_names_a_second_charge_and_its_refund(pool, razorpay, settings):
    day = date(2026, 1, 20)
    kept = await paid(pool, razorpay, settings)
    second = await control(settings, f"/sandbox/orders/{kept['razorpay_order_id']}"
                           "/second-capture", {"webhooks": {"enabled": False}})
    async with outbox_transaction(pool) as conn:
        refund_id = await refund_second_capture(conn, outcome_from_payment(second), "verify",
                                                None)
    await submit_refund(pool, razorpay, refund_id)

    async def processed():
        row = await pool.fetchrow("SELECT * FROM refunds WHERE id = $1", refund_id)
        await poll_refund(pool, razorpay, row)
        return await pool.fetchval("SELECT status = 'processed' FROM refunds WHERE id = $1",
                                   refund_id) or None

    await infra.eventually(processed)
    await settle(settings, at=at(day), webhook=False)
    await poll_settlements(pool, razorpay, datetime.now(UTC), since=start(day))
    await reconcile_day(pool, razorpay, day)

    chunks: list[bytes] = []

    async def write(chunk: bytes) -> None:
        chunks.append(chunk)

    today = datetime.now(UTC).date()
    async with pool.acquire() as conn:
        await write_ledger(conn, today, today, write)
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    mine = {(r["type"], r["payment_id"]): r["booking_id"] for r in rows
            if r["payment_id"] in (kept["razorpay_payment_id"], second["id"])}
    booking = str(kept["booking_id"])
    assert mine == {("payment", kept["razorpay_payment_id"]): booking,
                    ("payment", second["id"]): booking, ("refund", second["id"]): booking}


async def test_a_flagged_settlement_is_judged_again_and_matched_once_its_items_add_up(
        pool, razorpay, settings):
    day = datetime.now(UTC).date() - timedelta(days=1)
    await paid(pool, razorpay, settings)
    await paid(pool, razorpay, settings)
    made = (await settle(settings, at=at(day), webhook=False))["settlement"]
    await poll_settlements(pool, razorpay, datetime.now(UTC), since=start(day))
    # the first look read the day's recon before all of its items were out
    first, *_ = [i for i in await recon_items(razorpay, day) if i["settlement_id"] == made["id"]]
    columns = ItemColumns()
    columns.add(first)
    async with pool.acquire() as conn:
        await record_items(conn, columns)
        early = await judge(conn, made["id"])
    assert (early.status, early.changed) == ("flagged", True)

    await reconcile_due(pool, razorpay)  # not due yet: left as it is
    assert (await settlement_row(pool, made["id"]))["status"] == "flagged"
    await pool.execute("UPDATE settlements SET next_check_at = now() WHERE settlement_id = $1",
                       made["id"])  # a day later
    await reconcile_due(pool, razorpay)
    row = await settlement_row(pool, made["id"])
    assert (row["status"], row["items"], row["difference_paise"], row["next_check_at"]) == (
        "matched", 2, 0, None)


async def test_a_settlement_whose_recon_day_is_indias_is_found_there(own, webhook_url):
    """A settlement made at 20:00 UTC is on the next day in India: a recon API that dates
    its days by India's clock lists its items there."""
    pool = own[1]
    evening = datetime(2026, 4, 10, 20, 0, tzinfo=UTC)
    async with running_sandbox(own[0], sandbox_refund_delay_seconds=0,
                               sandbox_recon_utc_offset_minutes=330,
                               sandbox_webhook_url=webhook_url) as settings:
        razorpay = RazorpayClient(settings)
        try:
            await paid(pool, razorpay, settings)
            made = (await settle(settings, at=int(evening.timestamp()), webhook=False))[
                "settlement"]
            await poll_settlements(pool, razorpay, datetime.now(UTC), since=evening)
            assert await recon_items(razorpay, evening.date()) == []  # India's 11 April
            await reconcile_due(pool, razorpay)
        finally:
            razorpay.close()
    row = await settlement_row(pool, made["id"])
    assert (row["status"], row["items"]) == ("matched", 1)


async def a6pay(settings, *args: str) -> tuple[int, dict]:
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "RAZORPAY_BASE_URL": settings.razorpay_base_url}
    env.pop("RAZORPAY_KEY_ID", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert out, err.decode()
    return proc.returncode, json.loads(out.decode().strip().splitlines()[-1])


async def test_a6pay_recon_exits_1_when_anything_is_flagged(pool, razorpay, settings):
    matched_day, short_day = date(2026, 1, 14), date(2026, 1, 15)
    await paid(pool, razorpay, settings)
    good = (await settle(settings, at=at(matched_day), webhook=False))["settlement"]
    await paid(pool, razorpay, settings)
    short = (await settle(settings, at=at(short_day), short_by=100, webhook=False))["settlement"]

    code, report = await a6pay(settings, "recon", "--date", matched_day.isoformat())
    assert code == 0, report
    assert [(s["settlement_id"], s["matched"]) for s in report["settlements"]] == [
        (good["id"], True)]
    assert report["unsettled"] == []

    code, report = await a6pay(settings, "recon", "--date", short_day.isoformat())
    assert code == 1
    assert [(s["settlement_id"], s["difference"]) for s in report["settlements"]] == [
        (short["id"], 1.0)]

    await paid(pool, razorpay, settings)  # never settled
    later = datetime.now(UTC).date() + timedelta(days=settings.settlement_due_days + 1)
    code, report = await a6pay(settings, "recon", "--date", later.isoformat())
    assert code == 1 and report["unsettled"]


async def test_a_day_of_many_pages_and_unknown_payments_is_recorded_whole(pool, razorpay,
                                                                         settings):
    """Three pages of payments our database never heard of: each kept, unlinked; the
    settlement matches; a second pass adds nothing."""
    day = date(2026, 3, 1)
    (made,) = (await control(settings, "/sandbox/settlements/month", {
        "prefix": "U", "per_day": 2_500, "days": 1, "amount": 100_000,
        "first_day_at": at(day)}))["settlements"]
    await poll_settlements(pool, razorpay, datetime.now(UTC), since=start(day))
    for _ in range(2):
        result = await reconcile_day(pool, razorpay, day)
        assert (result.items, result.unreadable) == (2_500, 0)
        assert [(v.settlement_id, v.status) for v in result.verdicts] == [(made["id"], "matched")]
    counts = await pool.fetchrow(
        "SELECT count(*) AS items, count(payment_ref) AS linked FROM settlement_items"
        " WHERE settlement_id = $1", made["id"])
    assert (counts["items"], counts["linked"]) == (2_500, 0)
