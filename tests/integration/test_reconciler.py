"""The background reconciler: orders nobody reported on are asked about with growing gaps,
and what Razorpay says goes through the same state machine."""

import asyncio
import logging
from contextlib import asynccontextmanager
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from order_service import handlers as orders
from order_service.reconciler import next_gap, reconcile, run_reconciler
from shared.razorpay_client import RazorpayClient
from shared.service import POOL, RAZORPAY, SETTINGS
from testkit.factories import make_booking
from testkit.infra import eventually, own_database
from testkit.inprocess import running_sandbox
from tests.support.tasks import running


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


async def paid_at_the_sandbox(pool, settings) -> str:
    """An open order paid at Razorpay (the sandbox) that no webhook or verify reported."""
    _, order_id = await open_order(pool, settings)
    await pay(settings, order_id, "captured")
    return order_id


async def captured(pool, order_id: str) -> bool:
    return await pool.fetchval(
        "SELECT status = 'captured' FROM payments WHERE razorpay_order_id = $1", order_id)


async def test_background_reconciler_confirms_a_payment_nobody_reported(pool, settings):
    from order_service.app import create_app

    app = create_app(settings, relay=False)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        order_id = await paid_at_the_sandbox(pool, settings)
        assert await eventually(lambda: captured(pool, order_id), timeout=10)
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


TICK = 0.05


@pytest.fixture
async def own(settings):
    # columns are renamed under the running loops: a database no other test uses
    async with own_database(settings, reconcile_poll_seconds=TICK,
                            stuck_after_seconds=300) as own:
        yield own


@asynccontextmanager
async def reconciler_running(settings, pool):
    app = web.Application()
    app[SETTINGS], app[POOL], app[RAZORPAY] = settings, pool, RazorpayClient(settings)
    try:
        async with running(run_reconciler(app)):
            yield
    finally:
        app[RAZORPAY].close()


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "order_service.reconciler" and r.levelno >= logging.WARNING]


async def stuck_capture(pool) -> str:
    """A payment captured ten minutes ago whose booking is still pending: the sweep's work."""
    booking = await make_booking(pool)
    order_id = f"order_Loop{booking['booking_id']:09d}"
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id, captured_at)"
        " VALUES ($1, $2, $3, 'r', $4, 'captured', $5, now() - interval '10 minutes')",
        booking["booking_id"], booking["customer_id"], order_id, booking["amount_paise"],
        f"pay_Loop{booking['booking_id']:011d}")
    return order_id


async def test_a_failing_reconcile_pass_is_one_line_each_way_and_the_sweep_runs_on(
        own, caplog):
    settings, pool = own
    caplog.set_level(logging.INFO, logger="order_service.reconciler")
    await pool.execute("ALTER TABLE payments RENAME COLUMN second_look_due TO away")
    async with reconciler_running(settings, pool):
        for _ in range(2):  # two sweeps, while the reconcile pass fails tick after tick
            order_id = await stuck_capture(pool)

            async def re_emitted(order_id=order_id):
                return await pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE body->'data'->>'order_id' = $1"
                    " AND body->'data'->>'source' = 'repair'", order_id)

            await eventually(re_emitted, timeout=10)
        await asyncio.sleep(10 * TICK)
        assert warnings(caplog) == ["reconcile pass failed: UndefinedColumnError"]
        await pool.execute("ALTER TABLE payments RENAME COLUMN away TO second_look_due")

        async def resumed():
            return "reconcile pass resumed" in warnings(caplog)

        await eventually(resumed, timeout=10)
        await asyncio.sleep(10 * TICK)
    # (the rename back also invalidates the sweep's cached statement: one failed sweep)
    assert [line for line in warnings(caplog) if line.startswith("reconcile pass")] == [
        "reconcile pass failed: UndefinedColumnError", "reconcile pass resumed"]


async def test_a_failing_sweep_does_not_stop_the_reconcile_pass(own, caplog):
    settings, pool = own
    caplog.set_level(logging.INFO, logger="order_service.reconciler")
    await pool.execute("ALTER TABLE payments RENAME COLUMN repaired_at TO away")
    async with reconciler_running(settings, pool):
        order_id = await paid_at_the_sandbox(pool, settings)
        await eventually(lambda: captured(pool, order_id), timeout=10)
        await asyncio.sleep(10 * TICK)
    assert warnings(caplog) == ["stuck-payment sweep failed: UndefinedColumnError"]
    assert any(r.getMessage() == "reconcile pass" and r.ctx["captured"] == 1
               for r in caplog.records)
