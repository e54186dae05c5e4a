"""The money after capture through the real processes, with the sandbox's signed webhooks
(redelivered): a second charge refunded once and mailed, a dashboard refund counted once, a
dispute that blocks refunds, contested through the admin API and won, another accepted with
`a6pay` and lost."""

from __future__ import annotations

import uuid

import pytest

from testkit.api_client import ADMIN_TOKEN, call, payment_status, refund
from testkit.infra import eventually
from tests.e2e.flows import a6pay, paid_booking

pytestmark = pytest.mark.e2e
TWICE = {"enabled": True, "duplicate": 1}  # every webhook delivered twice


async def control(http, stack, path: str, body: dict) -> dict:
    status, answer, _ = await call(http, "POST", f"{stack.sandbox}{path}", json=body)
    assert status == 200, answer
    return answer


async def captured_payment(pool, booking_id):
    return await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)


async def refunds_settled(pool, booking_id, cause, count=1):
    async def settled():
        rows = await pool.fetch("SELECT * FROM refunds WHERE booking_id = $1 AND cause = $2",
                                booking_id, cause)
        return rows if len(rows) == count and all(
            r["status"] == "processed" for r in rows) else None
    return await eventually(settled, timeout=30)


def admin(key: str | None = None) -> dict:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"} | (
        {"Idempotency-Key": key} if key else {})


async def test_a_second_charge_and_a_dashboard_refund(stack, http, pool):
    booking = await paid_booking(http, stack, pool)
    booking_id = booking["booking_id"]
    payment = await captured_payment(pool, booking_id)

    await control(http, stack, f"/sandbox/orders/{payment['razorpay_order_id']}/second-capture",
                  {"webhooks": TWICE})
    [duplicate] = await refunds_settled(pool, booking_id, "duplicate_payment")
    assert duplicate["amount_paise"] == booking["amount"] * 100
    mail = await eventually(lambda: pool.fetchval(
        "SELECT recipient FROM notifications WHERE booking_id = $1"
        " AND kind = 'duplicate_payment_refund'", booking_id), timeout=20)
    assert mail and "@" in mail
    status, answer, _ = await payment_status(http, stack, booking_id)
    assert (answer["status"], answer["paid"]) == ("paid", True)  # the first payment stays
    shown = a6pay(stack, "booking", str(booking_id))
    assert [d["found_by"] for d in shown["duplicate_payments"]] == ["webhook"]
    assert "duplicate_payment" in [r["cause"] for r in shown["refunds"]]

    await control(http, stack,
                  f"/sandbox/payments/{payment['razorpay_payment_id']}/dashboard-refund",
                  {"amount": 50_000, "webhooks": TWICE})
    [outside] = await refunds_settled(pool, booking_id, "outside")
    assert outside["amount_paise"] == 50_000
    assert (await captured_payment(pool, booking_id))["refunded_paise"] == 50_000
    status, over, _ = await refund(http, stack, {"booking_id": booking_id,
                                                 "amount": booking["amount"]}, str(uuid.uuid4()))
    assert status == 400 and "more than remains" in over["message"]


async def test_disputes_contested_and_won_accepted_and_lost(stack, http, pool):
    booking = await paid_booking(http, stack, pool)
    booking_id = booking["booking_id"]
    payment = await captured_payment(pool, booking_id)
    dispute = await control(http, stack,
                            f"/sandbox/payments/{payment['razorpay_payment_id']}/dispute",
                            {"webhooks": TWICE})
    await eventually(lambda: pool.fetchval(
        "SELECT status = 'open' FROM disputes WHERE razorpay_dispute_id = $1", dispute["id"]),
        timeout=20)

    status, refused, _ = await refund(http, stack, {"booking_id": booking_id},
                                      str(uuid.uuid4()))
    assert status == 409 and "open dispute" in refused["message"]
    listed = a6pay(stack, "disputes", "--status", "open")
    assert dispute["id"] in [d["dispute_id"] for d in listed["disputes"]]
    ops_mail = await eventually(lambda: pool.fetchval(
        "SELECT recipient FROM notifications WHERE booking_id = $1 AND kind = 'dispute_opened'",
        booking_id), timeout=20)
    assert ops_mail == "ops@a6cars.example"

    status, contested, _ = await call(
        http, "POST", f"{stack.gateway}/api/razorpay/disputes/{dispute['id']}/contest",
        headers=admin(str(uuid.uuid4())))
    assert status == 200, contested
    assert contested["dispute"]["status"] == "under_review", contested
    await control(http, stack, f"/sandbox/disputes/{dispute['id']}/decide",
                  {"decision": "won", "webhooks": TWICE})
    await eventually(lambda: pool.fetchval(
        "SELECT status = 'won' FROM disputes WHERE razorpay_dispute_id = $1", dispute["id"]),
        timeout=20)
    status, listed, _ = await call(http, "GET", f"{stack.gateway}/api/razorpay/disputes",
                                   headers=admin())
    assert status == 200
    assert [d["status"] for d in listed["disputes"] if d["dispute_id"] == dispute["id"]] == [
        "won"]

    other = await paid_booking(http, stack, pool)
    other_payment = await captured_payment(pool, other["booking_id"])
    lost = await control(http, stack,
                         f"/sandbox/payments/{other_payment['razorpay_payment_id']}/dispute",
                         {"webhooks": TWICE})
    await eventually(lambda: pool.fetchval(
        "SELECT true FROM disputes WHERE razorpay_dispute_id = $1", lost["id"]), timeout=20)
    assert a6pay(stack, "dispute", "accept", lost["id"])["dispute"]["status"] == "lost"
    assert a6pay(stack, "dispute", "accept", lost["id"], exit_code=1)["status"] == 409
    shown = a6pay(stack, "booking", str(other["booking_id"]))
    assert [d["status"] for d in shown["disputes"]] == ["lost"]
