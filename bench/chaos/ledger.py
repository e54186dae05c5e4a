"""The ledger: what our database, Razorpay (the sandbox) and the broker say happened,
set against each other and against the plan. One table, then the verdict."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import aio_pika
import aiohttp
import asyncpg

from shared.settings import SANDBOX_KEY_ID, SANDBOX_KEY_SECRET

QUEUE = "a6pay.events.notifier"
DLQ = QUEUE + ".dlq"

_DB_COUNTS = """
SELECT
  (SELECT count(DISTINCT booking_id) FROM payments WHERE status = 'captured') AS paid,
  (SELECT count(*) FROM payments) AS orders,
  (SELECT count(*) FROM bookings WHERE status = 'confirmed') AS confirmed,
  (SELECT count(*) FROM passes) AS passes,
  (SELECT count(*) FROM notifications WHERE kind = 'payment_confirmed') AS confirmations,
  (SELECT count(*) FROM notifications WHERE kind = 'payment_failed') AS failure_notices,
  (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unsent,
  (SELECT count(*) FROM outbox WHERE routing_key = 'payment.captured') AS captured_events,
  (SELECT count(*) FROM outbox) AS events,
  (SELECT count(*) FROM inbox WHERE consumer = 'notifier') AS consumed,
  (SELECT count(*) FROM webhook_events WHERE event_key LIKE 'id:evt_forged_%') AS forged_rows
"""

_PAID_BOOKINGS = "SELECT DISTINCT booking_id FROM payments WHERE status = 'captured'"


@dataclass
class Row:
    label: str
    value: int | str
    expected: int | str | None  # None: information only
    ok: bool = True


async def db_counts(pool: asyncpg.Pool) -> dict:
    async with pool.acquire() as conn:
        return dict(await conn.fetchrow(_DB_COUNTS))


async def queue_depths(amqp_url: str) -> dict[str, int | None]:
    """Messages waiting in the notifier's queue and in its dead-letter queue (passive)."""
    depths: dict[str, int | None] = {}
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        for name in (QUEUE, DLQ):
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                depths[name] = queue.declaration_result.message_count
            except aio_pika.exceptions.ChannelNotFoundEntity:
                depths[name] = None  # never declared: nothing can be in it
    return depths


async def webhook_states(http: aiohttp.ClientSession, sandbox: str) -> Counter:
    async with http.get(f"{sandbox}/sandbox/webhooks") as resp:
        return Counter(item["state"] for item in (await resp.json())["items"])


async def razorpay_captured(http: aiohttp.ClientSession, sandbox: str, order_ids) -> int:
    """Orders with a captured payment, asked of Razorpay one by one (Basic auth)."""
    auth = aiohttp.BasicAuth(SANDBOX_KEY_ID, SANDBOX_KEY_SECRET)
    gate = asyncio.Semaphore(20)

    async def captured(order_id: str) -> bool:
        async with gate, http.get(f"{sandbox}/v1/orders/{order_id}/payments", auth=auth) as r:
            items = (await r.json())["items"]
        return any(p["status"] == "captured" for p in items)

    return sum(await asyncio.gather(*(captured(o) for o in order_ids)))


async def settle(pool, http, sandbox: str, amqp_url: str, expected_paid: int,
                 timeout: float) -> tuple[bool, float]:
    """Waits until nothing is in flight any more; returns (settled, seconds waited)."""
    started = time.monotonic()
    while True:
        counts = await db_counts(pool)
        states = await webhook_states(http, sandbox)
        try:
            depth = (await queue_depths(amqp_url))[QUEUE] or 0
        except Exception:  # broker still coming back
            depth = -1
        paid = counts["paid"]
        quiet = (
            states["pending"] == 0 and counts["unsent"] == 0 and depth == 0
            and paid == expected_paid and counts["confirmed"] == paid
            and counts["passes"] == 2 * paid and counts["confirmations"] == paid
        )
        waited = time.monotonic() - started
        if quiet or waited > timeout:
            return quiet, waited
        await asyncio.sleep(1)


def check(label: str, value: int, expected: int) -> Row:
    return Row(label, value, expected, value == expected)


def render(rows: list[Row]) -> str:
    width = max(len(r.label) for r in rows)
    values = [str(r.value) for r in rows]
    vwidth = max(len(v) for v in values)
    ewidth = max(len(str(r.expected or "")) for r in rows)
    head = f"{'':{width}}  {'value':>{vwidth}}  {'expected':>{max(ewidth, 8)}}"
    lines = [head, "-" * (len(head) + 10)]
    for row, value in zip(rows, values, strict=True):
        expected = "" if row.expected is None else str(row.expected)
        verdict = "" if row.expected is None else ("ok" if row.ok else "MISMATCH")
        lines.append(f"{row.label:{width}}  {value:>{vwidth}}  {expected:>{max(ewidth, 8)}}"
                     f"  {verdict}")
    return "\n".join(lines)
