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
  (SELECT count(*) FROM webhook_events WHERE event_key LIKE 'id:evt_forged_%') AS forged_rows,
  -- paid, then cancelled (admin API): no longer confirmed
  (SELECT count(*) FROM bookings b WHERE b.status = 'cancelled' AND EXISTS (SELECT 1
     FROM payments p WHERE p.booking_id = b.id AND p.status = 'captured')) AS cancelled_paid,
  -- paid before any cancellation: confirmed once, so 2 passes and a confirmation mail
  (SELECT count(*) FROM payments p JOIN bookings b ON b.id = p.booking_id
     WHERE p.status = 'captured' AND (b.cancelled_at IS NULL OR p.captured_at < b.cancelled_at))
     AS confirmable,
  (SELECT count(*) FROM refunds WHERE status IN ('requested', 'pending')) AS refunds_open,
  (SELECT count(*) FROM refunds WHERE status = 'processed') AS refunds_processed,
  (SELECT COALESCE(sum(amount_paise), 0) FROM refunds WHERE status = 'processed')
     AS refunded_paise,
  (SELECT count(*) FROM refunds WHERE status = 'failed') AS refunds_failed
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
    """Orders with a captured (maybe since refunded) payment, asked of Razorpay one by one."""
    auth = aiohttp.BasicAuth(SANDBOX_KEY_ID, SANDBOX_KEY_SECRET)
    gate = asyncio.Semaphore(20)

    async def captured(order_id: str) -> bool:
        async with gate, http.get(f"{sandbox}/v1/orders/{order_id}/payments", auth=auth) as r:
            items = (await r.json())["items"]
        # a payment refunded in full shows as `refunded`: it was captured all the same
        return any(p["status"] in ("captured", "refunded") for p in items)

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
        paid, confirmable = counts["paid"], counts["confirmable"]
        quiet = (
            states["pending"] == 0 and counts["unsent"] == 0 and depth == 0
            and paid == expected_paid and counts["confirmed"] == paid - counts["cancelled_paid"]
            and counts["passes"] == 2 * confirmable and counts["confirmations"] == confirmable
            and counts["refunds_open"] == 0
        )
        waited = time.monotonic() - started
        if quiet or waited > timeout:
            return quiet, waited
        await asyncio.sleep(1)


async def razorpay_refunds(http: aiohttp.ClientSession, sandbox: str) -> list[dict]:
    """Every refund Razorpay made, through its own list API (newest first, pages of 100)."""
    auth = aiohttp.BasicAuth(SANDBOX_KEY_ID, SANDBOX_KEY_SECRET)
    refunds, skip = [], 0
    while True:
        async with http.get(f"{sandbox}/v1/refunds", params={"count": 100, "skip": skip},
                            auth=auth) as resp:
            items = (await resp.json())["items"]
        refunds += items
        if len(items) < 100:
            return refunds
        skip += 100


def refund_rows(counts: dict, at_razorpay: list[dict], captured: dict[str, int],
                planned: int) -> list[Row]:
    """Refunds here against refunds at Razorpay: the same money, no payment refunded twice
    and none past what was captured. `captured`: Razorpay payment id -> captured paise."""
    processed = [r for r in at_razorpay if r["status"] == "processed"]
    live = [r for r in at_razorpay if r["status"] != "failed"]
    # refunds made in the dashboard carry no note of ours: not ours to count here
    notes = Counter(str(note) for r in at_razorpay
                    if (note := (r.get("notes") or {}).get("a6_refund_id")) is not None)
    per_payment = Counter()
    for refund in live:
        per_payment[refund["payment_id"]] += refund["amount"]
    over = [p for p, total in per_payment.items() if total > captured.get(p, 0)]
    return [
        check("refunds processed here", counts["refunds_processed"], planned),
        check("refunded at Razorpay (paise)", sum(r["amount"] for r in processed),
              counts["refunded_paise"]),
        check("refund rows asked of Razorpay twice", sum(n > 1 for n in notes.values()), 0),
        check("payments refunded past their capture", len(over), 0),
        check("refunds still requested/pending", counts["refunds_open"], 0),
        Row("refunds failed (listed by refunds-needed)", counts["refunds_failed"], None),
    ]


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
