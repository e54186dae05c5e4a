"""Multi-step flows the confirmation tests share."""

from __future__ import annotations

import json
import subprocess
import sys

from testkit.api_client import create_order, pay, payment_status
from testkit.factories import make_booking
from testkit.infra import eventually


async def booking_with_order(http, stack, pool, amount_paise=150_000):
    booking = await make_booking(pool, amount_paise)
    status, body, _ = await create_order(http, stack, booking)
    assert status == 200, body
    return booking, body["order_id"]


def a6pay(stack, *args: str, exit_code: int = 0) -> dict:
    """Run the `a6pay` console script against the stack; parse its last stdout line."""
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", *args], env=stack.env, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode == exit_code, done.stderr + done.stdout
    return json.loads(done.stdout.strip().splitlines()[-1])


async def report(pool, booking_id: int) -> dict:
    from notifier.report import booking_report

    return await booking_report(pool, booking_id)


async def wait_confirmed(pool, booking_id: int, timeout: float = 20) -> dict:
    async def confirmed():
        r = await report(pool, booking_id)
        return r if r["status"] == "confirmed" and len(r["passes"]) == 2 and r[
            "notifications"] else None

    return await eventually(confirmed, timeout=timeout)


async def wait_paid(http, stack, booking_id: int, timeout: float = 20) -> dict:
    async def paid():
        status, body, _ = await payment_status(http, stack, booking_id)
        return body if status == 200 and body["paid"] else None

    return await eventually(paid, timeout=timeout)


async def paid_booking(http, stack, pool, amount_paise=150_000):
    booking, order_id = await booking_with_order(http, stack, pool, amount_paise)
    await pay(http, stack, order_id)
    await wait_paid(http, stack, booking["booking_id"])
    await wait_confirmed(pool, booking["booking_id"])
    return booking


async def counts(pool, booking_id: int) -> dict:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT
                (SELECT count(*) FROM payments WHERE booking_id = $1 AND status = 'captured')
                    AS captured,
                (SELECT count(*) FROM outbox WHERE routing_key = 'payment.captured'
                    AND (body->'data'->>'booking_id')::bigint = $1) AS captured_events,
                (SELECT count(*) FROM passes WHERE booking_id = $1) AS passes,
                (SELECT count(*) FROM notifications WHERE booking_id = $1
                    AND kind = 'payment_confirmed') AS confirmations,
                (SELECT count(*) FROM notifications WHERE booking_id = $1
                    AND kind = 'payment_failed') AS failures""",
            booking_id,
        )
    return dict(row)
