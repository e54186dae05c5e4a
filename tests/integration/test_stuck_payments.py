"""Repair: a captured payment whose booking is still pending after STUCK_AFTER_SECONDS has
its payment.captured re-emitted through the outbox (then after growing gaps), is reported
(ALARM log, a6pay_payments_stuck) and listed by `a6pay stuck`; the notifier applies the
copy once, and a copy of an event that did arrive changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from order_service.repair import repair_stuck
from shared.events import Envelope
from shared.metrics import REGISTRY
from testkit.factories import make_booking
from testkit.infra import own_database
from tests.support.notifier import apply_event

STUCK_AFTER = 300


@pytest.fixture
async def own(base_settings):
    # the sweep and the gauge see every row: a database no other test writes to
    async with own_database(base_settings, stuck_after_seconds=STUCK_AFTER) as (settings, pool):
        yield settings, pool


async def captured(pool, booking, *, minutes_ago: float, booking_status: str = "pending"):
    n = booking["booking_id"]
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise, status, razorpay_payment_id, captured_at)"
            " VALUES ($1, $2, $3, 'r', $4, 'captured', $5, now() - $6 * interval '1 minute')",
            n, booking["customer_id"], f"order_Stuck{n:09d}", booking["amount_paise"],
            f"pay_Stuck{n:011d}", minutes_ago)
        await conn.execute("UPDATE bookings SET status = $2 WHERE id = $1", n, booking_status)


async def repair_events(pool) -> list[Envelope]:
    rows = await pool.fetch("SELECT body FROM outbox WHERE routing_key = 'payment.captured'"
                            " AND body->'data'->>'source' = 'repair' ORDER BY created_at")
    return [Envelope.model_validate(r["body"]) for r in rows]


async def state(pool, booking_id) -> tuple[str, int]:
    return (await pool.fetchval("SELECT status FROM bookings WHERE id = $1", booking_id),
            await pool.fetchval("SELECT count(*) FROM passes WHERE booking_id = $1", booking_id))


def a6pay_stuck(settings) -> dict:
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "STUCK_AFTER_SECONDS": str(STUCK_AFTER)}
    done = subprocess.run([sys.executable, "-m", "ops.cli", "stuck"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def gauge() -> float:
    return REGISTRY.get_sample_value("a6pay_payments_stuck")


async def test_a_stuck_capture_is_re_emitted_reported_listed_and_then_confirmed(own, caplog):
    settings, pool = own
    stuck = await make_booking(pool)
    await captured(pool, stuck, minutes_ago=10)
    fine = await make_booking(pool)
    await captured(pool, fine, minutes_ago=10, booking_status="confirmed")
    fresh = await make_booking(pool)
    await captured(pool, fresh, minutes_ago=1)  # its event may simply be on its way
    cancelled = await make_booking(pool)
    await captured(pool, cancelled, minutes_ago=10, booking_status="cancelled")  # a refund

    listed = a6pay_stuck(settings)
    assert [r["booking_id"] for r in listed["stuck"]] == [stuck["booking_id"]]
    entry = listed["stuck"][0]
    assert entry["amount"] == 1500.0 and entry["stuck_seconds"] >= 600
    assert entry["repair_attempts"] == 0
    assert "pay_" not in json.dumps(listed) and "order_" not in json.dumps(listed)

    assert await repair_stuck(pool, settings) == {"stuck": 1, "reemitted": 1}
    assert gauge() == 1
    [event] = await repair_events(pool)
    data = event.data
    assert (data["booking_id"], data["payment_id"], data["amount_paise"]) == (
        stuck["booking_id"], f"pay_Stuck{stuck['booking_id']:011d}", stuck["amount_paise"])
    alarms = [r for r in caplog.records if getattr(r, "ctx", {}).get("alarm") == "payment_stuck"]
    assert [r.ctx["booking_id"] for r in alarms] == [stuck["booking_id"]]
    assert alarms[0].levelname == "ERROR" and "pay_" not in alarms[0].getMessage()

    # the next tick is too soon for another copy: gaps grow
    assert await repair_stuck(pool, settings) == {"stuck": 1, "reemitted": 0}
    assert len(await repair_events(pool)) == 1
    assert a6pay_stuck(settings)["stuck"][0]["repair_attempts"] == 1

    # the notifier applies the copy (the payment stands behind it), and applies it once
    async with pool.acquire() as conn:
        assert await apply_event(conn, event.event(), event.id, pass_secret="s") is True
        assert await apply_event(conn, event.event(), event.id, pass_secret="s") is False
        again = uuid.uuid4()  # the original event arriving late: same fact, no new effect
        assert await apply_event(conn, event.event(), again, pass_secret="s") is True
    assert await state(pool, stuck["booking_id"]) == ("confirmed", 2)
    assert await repair_stuck(pool, settings) == {"stuck": 0, "reemitted": 0}
    assert gauge() == 0
    assert a6pay_stuck(settings)["stuck"] == []


async def test_a_still_stuck_payment_is_re_emitted_again_after_its_gap(own):
    settings, pool = own
    booking = await make_booking(pool)
    await captured(pool, booking, minutes_ago=30)
    assert (await repair_stuck(pool, settings))["reemitted"] == 1
    # as if the first copy was dead-lettered too, and its gap (2 × 5 min) has passed
    await pool.execute("UPDATE payments SET repaired_at = now() - interval '11 minutes'"
                       " WHERE booking_id = $1", booking["booking_id"])
    assert (await repair_stuck(pool, settings))["reemitted"] == 1
    await pool.execute("UPDATE payments SET repaired_at = now() - interval '11 minutes'"
                       " WHERE booking_id = $1", booking["booking_id"])
    assert (await repair_stuck(pool, settings))["reemitted"] == 0  # now 4 × 5 min
    assert len(await repair_events(pool)) == 2
