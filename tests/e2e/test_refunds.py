"""Cancellations and refunds through the gateway, against the real processes and the
sandbox: the admin API, its idempotency keys, refund webhooks, revoked passes."""

from __future__ import annotations

import uuid

import pytest

from testkit.api_client import (
    cancel_booking,
    pay,
    payment_status,
    refund,
    sandbox_stats,
    set_refund_behaviour,
)
from testkit.infra import eventually
from tests.e2e.flows import a6pay, booking_with_order, paid_booking

pytestmark = pytest.mark.e2e


def key() -> str:
    return str(uuid.uuid4())


async def refunds_of(pool, booking_id):
    return [dict(r) for r in await pool.fetch(
        "SELECT id, amount_paise, status, cause FROM refunds WHERE booking_id = $1 ORDER BY id",
        booking_id)]


async def settled(pool, booking_id, count):
    async def all_final():
        rows = await refunds_of(pool, booking_id)
        done = len(rows) == count and all(r["status"] in ("processed", "failed") for r in rows)
        return rows if done else None

    return await eventually(all_final, timeout=30)


async def test_admin_api_needs_the_token_and_a_key(stack, http, pool):
    booking = await paid_booking(http, stack, pool)
    body = {"booking_id": booking["booking_id"], "amount": 100}

    for token in (None, "wrong-token"):
        status, answer, headers = await refund(http, stack, body, key(), token=token)
        assert (status, answer) == (401, {"message": "Admin authentication required"})
        assert headers["WWW-Authenticate"] == "Bearer"
    status, answer, _ = await refund(http, stack, body, None)
    assert (status, answer) == (400, {"message": "Idempotency-Key header is required"})
    status, answer, _ = await refund(http, stack, {**body, "amount": -5}, key())
    assert status == 400 and "greater than zero" in answer["message"]
    status, answer, _ = await refund(http, stack, {**body, "amount": 1.234}, key())
    assert status == 400 and "2 decimal places" in answer["message"]
    status, _, _ = await refund(http, stack, {"booking_id": 2**62}, key())
    assert status == 404
    assert await refunds_of(pool, booking["booking_id"]) == []


async def test_partial_then_full_refund_with_a_retried_key(stack, http, pool):
    booking = await paid_booking(http, stack, pool)
    booking_id, first_key = booking["booking_id"], key()

    status, first, _ = await refund(http, stack, {"booking_id": booking_id, "amount": 500},
                                    first_key)
    assert status == 200, first
    assert (first["refund"]["amount"], first["remaining"]) == (500.0, 1000.0)
    again = await refund(http, stack, {"booking_id": booking_id, "amount": 500}, first_key)
    assert again[:2] == (200, first)  # the first answer, not a second refund
    other = await refund(http, stack, {"booking_id": booking_id, "amount": 600}, first_key)
    assert other[:2] == (422, {"message": "Idempotency-Key was already used with a different"
                                          " request"})
    status, answer, _ = await payment_status(http, stack, booking_id)
    assert (answer["status"], answer["paid"]) == ("paid", True)

    status, over, _ = await refund(http, stack, {"booking_id": booking_id, "amount": 1000.01},
                                   key())
    assert status == 400, over
    status, rest, _ = await refund(http, stack, {"booking_id": booking_id}, key())
    assert (status, rest["refund"]["amount"], rest["remaining"]) == (200, 1000.0, 0)
    status, nothing, _ = await refund(http, stack, {"booking_id": booking_id}, key())
    assert (status, nothing["message"]) == (409, "Nothing left to refund for this booking")

    status, answer, _ = await payment_status(http, stack, booking_id)
    assert (status, answer["status"], answer["paid"]) == (200, "refunded", False)
    rows = await settled(pool, booking_id, 2)  # refund.processed webhooks from the sandbox
    assert [(r["amount_paise"], r["status"]) for r in rows] == [
        (50_000, "processed"), (100_000, "processed")]
    sources = await pool.fetch(
        "SELECT body->'data'->>'source' AS source FROM outbox"
        " WHERE routing_key = 'refund.processed' AND (body->'data'->>'booking_id')::bigint = $1",
        booking_id)
    assert len(sources) == 2
    # refunded in full: both passes revoked
    await eventually(lambda: _revoked(pool, booking_id), timeout=20)


async def _revoked(pool, booking_id):
    return await pool.fetchval(
        "SELECT count(*) = 2 FROM passes WHERE booking_id = $1 AND revoked_at IS NOT NULL",
        booking_id)


async def test_cancel_paid_booking_refunds_minus_fee_and_revokes_passes(stack, http, pool):
    booking = await paid_booking(http, stack, pool)
    booking_id = booking["booking_id"]
    token = await pool.fetchval(
        "SELECT token FROM passes WHERE booking_id = $1 AND kind = 'collection'", booking_id)
    assert a6pay(stack, "check-pass", token)["valid"] is True

    status, first, _ = await cancel_booking(
        http, stack, booking_id, key(), {"reason": "plans changed", "cancellation_fee": 250})
    assert status == 200, first
    assert (first["status"], first["paid"], first["cancellation_fee"]) == ("cancelled", True, 250)
    assert first["refund"]["amount"] == 1250.0
    status, again, _ = await cancel_booking(http, stack, booking_id, key(), {})
    assert status == 200
    assert {**again, "refund": None} == {**first, "refund": None}
    assert again["refund"]["id"] == first["refund"]["id"]

    await eventually(lambda: _revoked(pool, booking_id), timeout=20)
    checked = a6pay(stack, "check-pass", token, exit_code=1)
    assert (checked["valid"], checked["reason"]) == (False, "revoked")
    rows = await settled(pool, booking_id, 1)
    assert rows[0]["status"] == "processed" and rows[0]["amount_paise"] == 125_000
    shown = a6pay(stack, "booking", str(booking_id))
    assert [(r["amount"], r["status"]) for r in shown["refunds"]] == [(1250.0, "processed")]


async def test_payment_after_cancellation_is_refunded_once(stack, http, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    booking_id = booking["booking_id"]
    status, cancelled, _ = await cancel_booking(http, stack, booking_id, key())
    assert (status, cancelled["paid"], cancelled["refund"]) == (200, False, None)

    await pay(http, stack, order_id, duplicate=2)  # the customer pays anyway; noisy webhooks

    rows = await settled(pool, booking_id, 1)
    assert [(r["cause"], r["amount_paise"], r["status"]) for r in rows] == [
        ("captured_after_cancellation", 150_000, "processed")]
    assert (await sandbox_stats(http, stack))["refunds"] >= 1
    assert await pool.fetchval(
        "SELECT count(*) FROM passes WHERE booking_id = $1", booking_id) == 0
    needed = a6pay(stack, "refunds-needed")["refunds_needed"]
    assert booking_id not in [r["booking_id"] for r in needed]


async def test_a_failed_refund_is_surfaced(stack, http, pool):
    booking = await paid_booking(http, stack, pool)
    booking_id = booking["booking_id"]
    await set_refund_behaviour(http, stack, outcome="failed")
    try:
        status, answer, _ = await refund(http, stack, {"booking_id": booking_id}, key())
        assert status == 200, answer
        rows = await settled(pool, booking_id, 1)
    finally:
        await set_refund_behaviour(http, stack, outcome="processed")
    assert rows[0]["status"] == "failed"
    status, answer, _ = await payment_status(http, stack, booking_id)
    assert answer["status"] == "paid"  # the money was not returned
    needed = a6pay(stack, "refunds-needed")["refunds_needed"]
    assert [r for r in needed if r["booking_id"] == booking_id and r["why"] == "refund_failed"]
    status, retry, _ = await refund(http, stack, {"booking_id": booking_id}, key())
    assert (status, retry["refund"]["amount"]) == (200, 1500.0)  # the amount is free again


async def test_ops_cli_refunds_in_part_then_cancels_with_a_fee(stack, http, pool):
    """`a6pay refund BOOKING --amount` and `a6pay cancel BOOKING --fee`, as an operator
    would run them: the same paths as the admin API, and `a6pay booking` shows the refunds."""
    booking = await paid_booking(http, stack, pool)  # ₹1500.00
    booking_id = str(booking["booking_id"])

    first = a6pay(stack, "refund", booking_id, "--amount", "200")
    assert (first["refund"]["amount"], first["remaining"]) == (200.0, 1300.0), first
    cancelled = a6pay(stack, "cancel", booking_id, "--fee", "300")
    assert (cancelled["status"], cancelled["refund"]["amount"]) == ("cancelled", 1000.0)

    rows = await settled(pool, booking["booking_id"], 2)
    assert sorted(r["amount_paise"] for r in rows) == [20_000, 100_000]  # 1500 - 200 - 300
    assert {r["status"] for r in rows} == {"processed"}
    shown = a6pay(stack, "booking", booking_id)
    assert sorted((r["amount"], r["status"]) for r in shown["refunds"]) == [
        (200.0, "processed"), (1000.0, "processed")], shown
    assert all(p["revoked_at"] for p in shown["passes"]), shown
    kept = a6pay(stack, "refund", booking_id, exit_code=1)  # all left, by default, keeps the fee
    assert kept["status"] == 409, kept
    waived = a6pay(stack, "refund", booking_id, "--amount", "300")  # the fee, asked for
    assert (waived["refund"]["amount"], waived["remaining"]) == (300.0, 0.0), waived
    assert a6pay(stack, "refund", booking_id, exit_code=1)["status"] == 409  # nothing left
