"""The money after capture in a chaos run: on some confirmed bookings the customer pays a
second time, an operator refunds part in Razorpay's dashboard (its webhooks sometimes all
lost), or the customer's bank raises a chargeback that we contest and win, or accept and
lose. Then the ledger's rows: every rupee captured is kept for one confirmed booking,
refunded exactly once, or held or deducted by a dispute."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg

from bench.chaos.ledger import Row, check
from shared.settings import SANDBOX_KEY_ID, SANDBOX_KEY_SECRET
from testkit.api_client import ADMIN_TOKEN

ACTIONS = ("second_capture", "dashboard_refund", "dispute_won", "dispute_lost")


async def after_capture(t, plan, booking: dict, confirmed_within) -> None:
    """Drive `plan.after_capture` on the confirmed booking (`t`: the run's Traffic)."""
    booking_id = booking["booking_id"]
    if not await confirmed_within(t, booking_id, 90):
        t.unexpected(plan, "booking not confirmed in time for " + plan.after_capture, None, "")
        plan.after_capture = None
        return
    payment = await t.pool.fetchrow(
        "SELECT razorpay_order_id, razorpay_payment_id FROM payments"
        " WHERE booking_id = $1 AND status = 'captured'", booking_id)
    webhooks = plan.webhooks.options()
    if plan.after_capture == "second_capture":
        path = f"/sandbox/orders/{payment['razorpay_order_id']}/second-capture"
        plan.refunds_made += await _control(t, plan, path, {"webhooks": webhooks}) is not None
    elif plan.after_capture == "dashboard_refund":
        lost = t.rng.random() < 0.3  # all its webhooks lost: the refund sweep finds it
        body = {"amount": booking["amount_paise"] // 2,
                "webhooks": {"enabled": True, "drop": True} if lost else webhooks}
        path = f"/sandbox/payments/{payment['razorpay_payment_id']}/dashboard-refund"
        refund = await _control(t, plan, path, body)
        plan.refunds_made += refund is not None
        if refund is not None and not await _recorded(t, refund["id"]):
            t.unexpected(plan, "dashboard refund never recorded", None, "")
    else:
        await _dispute(t, plan, payment["razorpay_payment_id"], webhooks)


async def _recorded(t, razorpay_refund_id: str) -> bool:
    for _ in range(240):  # by its webhooks, or by the sweep when they were all lost
        if await t.pool.fetchval("SELECT true FROM refunds WHERE razorpay_refund_id = $1",
                                 razorpay_refund_id):
            return True
        await asyncio.sleep(0.5)
    return False


async def _dispute(t, plan, payment_id: str, webhooks: dict) -> None:
    dispute = await _control(t, plan, f"/sandbox/payments/{payment_id}/dispute",
                             {"webhooks": webhooks})
    if dispute is None:
        return
    for _ in range(120):  # its webhook recorded (retried through outages)
        if await t.pool.fetchval("SELECT true FROM disputes WHERE razorpay_dispute_id = $1",
                                 dispute["id"]):
            break
        await asyncio.sleep(0.5)
    action = "contest" if plan.after_capture == "dispute_won" else "accept"
    answer = await _admin(t, plan, f"/api/razorpay/disputes/{dispute['id']}/{action}")
    if answer is not None and action == "contest":
        await _control(t, plan, f"/sandbox/disputes/{dispute['id']}/decide",
                       {"decision": "won", "webhooks": webhooks})
    plan.disputed_paise = dispute["amount"]


async def _control(t, plan, path: str, body: dict) -> dict | None:
    status, answer = await t.recorder.call(t.http, "sandbox_control", "POST",
                                           t.sandbox + path, json=body)
    if status != 200:
        t.unexpected(plan, "sandbox " + path.rsplit("/", 1)[-1], status, answer)
        return None
    return answer


async def _admin(t, plan, path: str) -> dict | None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Idempotency-Key": str(uuid.uuid4())}
    for attempt in range(5):
        status, answer = await t.api("admin_dispute", "POST", path, headers=headers)
        if status is not None and status < 500:
            break
        await asyncio.sleep(0.5 * 2**attempt)
    if status != 200:
        t.unexpected(plan, path.rsplit("/", 1)[-1], status, answer)
        return None
    return answer


_OURS = """
SELECT
  (SELECT count(*) FROM duplicate_payments) AS duplicates,
  (SELECT count(*) FROM duplicate_payments WHERE refunded_paise <> amount_paise)
     AS duplicates_not_refunded,
  (SELECT count(*) FROM refunds WHERE cause = 'outside') AS outside,
  (SELECT count(*) FROM disputes WHERE status = 'won') AS won,
  (SELECT count(*) FROM disputes WHERE status = 'lost') AS lost,
  (SELECT COALESCE(sum(amount_deducted_paise), 0) FROM disputes) AS deducted,
  (SELECT COALESCE(sum(amount_paise - refunded_paise), 0) FROM payments
     WHERE status = 'captured') AS kept_with_lost,
  (SELECT COALESCE(sum(amount_paise), 0) FROM duplicate_payments) AS duplicate_paise
"""


async def razorpay_money(http: aiohttp.ClientSession, sandbox: str, order_ids) -> dict:
    """Captured, refunded (not failed) and deducted paise at Razorpay for our orders."""
    auth = aiohttp.BasicAuth(SANDBOX_KEY_ID, SANDBOX_KEY_SECRET)
    gate = asyncio.Semaphore(20)
    totals = {"captured": 0, "refunded": 0, "deducted": 0}

    async def order(order_id: str) -> None:
        async with gate, http.get(f"{sandbox}/v1/orders/{order_id}/payments", auth=auth) as r:
            for p in (await r.json())["items"]:
                if p["status"] in ("captured", "refunded"):
                    totals["captured"] += p["amount"]
                    totals["refunded"] += p["amount_refunded"]

    await asyncio.gather(*(order(o) for o in order_ids))
    skip = 0
    while True:
        async with http.get(f"{sandbox}/v1/disputes", params={"count": 100, "skip": skip},
                            auth=auth) as r:
            items = (await r.json())["items"]
        totals["deducted"] += sum(d["amount_deducted"] for d in items)
        if len(items) < 100:
            return totals
        skip += 100


async def ledger_rows(pool: asyncpg.Pool, http, sandbox: str, order_ids, driven) -> list[Row]:
    async with pool.acquire() as conn:
        ours = dict(await conn.fetchrow(_OURS))
    money = await razorpay_money(http, sandbox, order_ids)
    planned = {a: sum(p.after_capture == a for p in driven) for a in ACTIONS}
    lost_paise = sum(p.disputed_paise for p in driven if p.after_capture == "dispute_lost")
    # Kept by us for confirmed bookings: captured, less refunded, less taken by disputes lost
    kept = ours["kept_with_lost"] - ours["deducted"]
    return [
        check("second captures recorded", ours["duplicates"], planned["second_capture"]),
        check("second captures not refunded in full", ours["duplicates_not_refunded"], 0),
        check("dashboard refunds recorded (cause outside)", ours["outside"],
              planned["dashboard_refund"]),
        check("disputes won", ours["won"], planned["dispute_won"]),
        check("disputes lost", ours["lost"], planned["dispute_lost"]),
        check("paise deducted by disputes (ours)", ours["deducted"], lost_paise),
        check("paise deducted by disputes (Razorpay)", money["deducted"], ours["deducted"]),
        check("paise captured at Razorpay = kept + refunded + deducted", money["captured"],
              kept + money["refunded"] + money["deducted"]),
    ]
