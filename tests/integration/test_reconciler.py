"""The background reconciler: orders nobody reported on are asked about with growing gaps,
and what Razorpay says goes through the same state machine."""

from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from order_service import handlers as orders
from order_service.reconciler import next_gap, reconcile
from shared.razorpay_client import RazorpayClient
from testkit.factories import make_booking
from testkit.infra import eventually
from testkit.inprocess import running_sandbox


@pytest.fixture(scope="module")
async def settings(base_settings):
    async with running_sandbox(
        base_settings, reconcile_first_delay_seconds=0.3, reconcile_poll_seconds=0.2,
        reconcile_max_gap_seconds=5,
    ) as settings:
        yield settings


async def open_order(pool, settings):
    booking = await make_booking(pool)
    order = await orders.create_order(
        pool, RazorpayClient(settings), booking_id=booking["booking_id"],
        customer_id=booking["customer_id"], amount_paise=booking["amount_paise"],
        reconcile_after=timedelta(seconds=settings.reconcile_first_delay_seconds))
    return booking, order.order_id


async def pay(settings, order_id, outcome):
    async with aiohttp.ClientSession() as http, http.post(
        f"{settings.razorpay_base_url}/sandbox/orders/{order_id}/pay",
        json={"outcome": outcome, "webhooks": {"enabled": False}},
    ) as resp:
        assert resp.status == 200


def test_gaps_grow_and_are_capped(settings):
    gaps = [next_gap(settings, n).total_seconds() for n in range(8)]
    assert gaps[:4] == [0.3, 0.6, 1.2, 2.4]
    assert gaps[-1] == 5 and gaps == sorted(gaps)


async def test_background_reconciler_confirms_a_payment_nobody_reported(pool, settings):
    from order_service.app import create_app

    app = create_app(settings, relay=False)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        _, order_id = await open_order(pool, settings)
        await pay(settings, order_id, "captured")

        async def captured():
            return await pool.fetchval(
                "SELECT status = 'captured' FROM payments WHERE razorpay_order_id = $1",
                order_id)

        assert await eventually(captured, timeout=10)
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT next_reconcile_at, reconcile_attempts FROM payments"
                " WHERE razorpay_order_id = $1", order_id)
            events = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE routing_key = 'payment.captured'"
                " AND body->'data'->>'order_id' = $1 AND body->'data'->>'source' = 'reconcile'",
                order_id)
        assert row["next_reconcile_at"] is None  # settled: never asked about again
        assert events == 1
    finally:
        await runner.cleanup()


async def test_an_unpaid_order_is_asked_about_with_growing_gaps(pool, settings):
    _, order_id = await open_order(pool, settings)
    razorpay = RazorpayClient(settings)
    seen = []
    for _ in range(3):
        await pool.execute(
            "UPDATE payments SET next_reconcile_at = now() WHERE razorpay_order_id = $1",
            order_id)
        summary = await reconcile(pool, razorpay, settings)
        assert summary["checked"] >= 1
        seen.append(await pool.fetchrow(
            "SELECT reconcile_attempts, next_reconcile_at - now() AS gap, status FROM payments"
            " WHERE razorpay_order_id = $1", order_id))
    assert [r["reconcile_attempts"] for r in seen] == [1, 2, 3]
    assert seen[0]["gap"] < seen[1]["gap"] < seen[2]["gap"]
    assert {r["status"] for r in seen} == {"created"}
    await pay(settings, order_id, "failed")
    await pool.execute(
        "UPDATE payments SET next_reconcile_at = now() WHERE razorpay_order_id = $1", order_id)
    await reconcile(pool, razorpay, settings)
    assert await pool.fetchval(
        "SELECT status FROM payments WHERE razorpay_order_id = $1", order_id) == "failed"


async def test_with_capture_on_an_authorized_payment_is_captured_by_reconciliation(
    pool, settings
):
    capturing = settings.model_copy(update={"capture_on_verify": True})
    _, order_id = await open_order(pool, capturing)
    await pay(capturing, order_id, "authorized")
    razorpay = RazorpayClient(capturing)
    await pool.execute(
        "UPDATE payments SET next_reconcile_at = now() WHERE razorpay_order_id = $1", order_id)
    await reconcile(pool, razorpay, capturing)
    assert await pool.fetchval(
        "SELECT status FROM payments WHERE razorpay_order_id = $1", order_id) == "captured"
    [payment] = await razorpay.fetch_order_payments(order_id)
    assert payment["status"] == "captured"


async def test_reconcile_everything_includes_orders_it_had_given_up_on(pool, settings):
    _, order_id = await open_order(pool, settings)
    await pay(settings, order_id, "captured")
    await pool.execute(
        "UPDATE payments SET next_reconcile_at = NULL WHERE razorpay_order_id = $1", order_id)
    await reconcile(pool, RazorpayClient(settings), settings)  # due only: skipped
    assert await pool.fetchval(
        "SELECT status FROM payments WHERE razorpay_order_id = $1", order_id) == "created"
    await reconcile(pool, RazorpayClient(settings), settings, everything=True)
    assert await pool.fetchval(
        "SELECT status FROM payments WHERE razorpay_order_id = $1", order_id) == "captured"
