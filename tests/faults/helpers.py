"""Short steps the fault tests share: bookings with orders, bulk state, sandbox views."""

from __future__ import annotations

import asyncio
import os
import signal

from testkit.api_client import call
from testkit.infra import eventually
from tests.e2e.flows import booking_with_order


async def bookings_with_orders(http, stack, pool, n: int) -> list[tuple[dict, str]]:
    """n unpaid bookings, each with its Razorpay order (a few at a time)."""
    made: list[tuple[dict, str]] = []
    for start in range(0, n, 10):
        made += await asyncio.gather(
            *(booking_with_order(http, stack, pool) for _ in range(min(10, n - start))))
    return made


async def booking_states(pool, booking_ids: list[int]) -> dict[int, dict]:
    """Per booking: its status, captured payments, captured events, passes, confirmations."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT b.id, b.status,
                (SELECT count(*) FROM payments p WHERE p.booking_id = b.id
                    AND p.status = 'captured') AS captured,
                (SELECT count(*) FROM outbox o WHERE o.routing_key = 'payment.captured'
                    AND (o.body->'data'->>'booking_id')::bigint = b.id) AS captured_events,
                (SELECT count(*) FROM passes s WHERE s.booking_id = b.id) AS passes,
                (SELECT count(*) FROM notifications n WHERE n.booking_id = b.id
                    AND n.kind = 'payment_confirmed') AS confirmations
            FROM bookings b WHERE b.id = ANY($1::bigint[])""",
            booking_ids,
        )
    return {r["id"]: dict(r) for r in rows}


ONCE = {"status": "confirmed", "captured": 1, "captured_events": 1, "passes": 2,
        "confirmations": 1}


def not_once(states: dict[int, dict]) -> dict[int, dict]:
    """The bookings whose effects are not exactly once (empty when all are)."""
    return {
        booking_id: state for booking_id, state in states.items()
        if {k: v for k, v in state.items() if k != "id"} != ONCE
    }


async def wait_all_confirmed_once(pool, booking_ids: list[int], timeout: float) -> None:
    async def done():
        states = await booking_states(pool, booking_ids)
        return len(states) == len(booking_ids) and not not_once(states)

    try:
        await eventually(done, timeout=timeout, interval=0.25)
    except AssertionError:
        wrong = not_once(await booking_states(pool, booking_ids))
        raise AssertionError(f"{len(wrong)} bookings not confirmed once: {wrong}") from None


async def confirmed_count(pool, booking_ids: list[int]) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM bookings WHERE id = ANY($1::bigint[]) AND status = 'confirmed'",
            booking_ids,
        )


async def inbox_rows_per_event(pool, booking_ids: list[int]) -> dict[str, int]:
    """For every payment.captured event of these bookings: how many inbox rows it has."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT o.id, (SELECT count(*) FROM inbox i
                             WHERE i.consumer = 'notifier' AND i.event_id = o.id) AS seen
               FROM outbox o WHERE o.routing_key = 'payment.captured'
                 AND (o.body->'data'->>'booking_id')::bigint = ANY($1::bigint[])""",
            booking_ids,
        )
    return {str(r["id"]): r["seen"] for r in rows}


async def unsent_captured(pool, booking_ids: list[int]) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            " AND routing_key = 'payment.captured'"
            " AND (body->'data'->>'booking_id')::bigint = ANY($1::bigint[])",
            booking_ids,
        )


async def unsent(pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")


async def webhook_deliveries(http, stack, order_ids) -> list[dict]:
    """The sandbox's record of each webhook it sent for these orders."""
    wanted = set(order_ids)
    _, body, _ = await call(http, "GET", f"{stack.sandbox}/sandbox/webhooks")
    return [d for d in body["items"] if d["order_id"] in wanted]


def pids(stack) -> dict[str, int]:
    return {name: proc.pid for name, proc in stack.procs.items() if proc.poll() is None}


def sigkill(stack, name: str) -> None:
    proc = stack.procs.pop(name)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def assert_no_unhandled_errors(stack) -> None:
    """No request of the run ended in the error middleware's 500 branch."""
    lines = [line for line in stack.logs().splitlines() if '"unhandled error"' in line]
    assert not lines, lines[:3]
