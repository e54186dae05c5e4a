"""Benchmark data written with SQL (generate_series), not through the API: pending bookings,
and pending bookings that already have an open Razorpay order (for webhook ingest and the
pgbench limit), plus the signed `payment.captured` deliveries wrk replays."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from shared.settings import SANDBOX_WEBHOOK_SECRET
from shared.signatures import webhook_signature
from testkit.api_client import webhook_body

AMOUNT_PAISE = 150_000

_BOOKINGS = """
WITH c AS (
    INSERT INTO customers (name, email, phone)
    SELECT 'Bench Customer ' || g, 'bench-{tag}-' || g || '@example.com', '+919000090000'
    FROM generate_series(1, {n}) g
    RETURNING id
)
INSERT INTO bookings (customer_id, car_id, amount_paise, start_date, end_date)
SELECT id, {car}, {amount}, date '2026-12-01', date '2026-12-03' FROM c
RETURNING id, customer_id
"""

# An open order per booking, as create-order leaves it (reconciliation far off).
_ORDERS = """
INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt, amount_paise,
                      next_reconcile_at)
SELECT b.id, b.customer_id, '{prefix}' || b.i, 'a6-bench-' || b.id, {amount},
       now() + interval '1 day'
FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS b(id, customer_id, i)
"""


async def _car(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "INSERT INTO cars (name, registration) VALUES ('Maruti Swift', 'KA01BE0001') RETURNING id")


async def pending_bookings(conn: asyncpg.Connection, n: int, tag: str) -> list[dict]:
    rows = await conn.fetch(_BOOKINGS.format(n=n, tag=tag, car=await _car(conn),
                                             amount=AMOUNT_PAISE))
    return [{"booking_id": r["id"], "customer_id": r["customer_id"],
             "amount_paise": AMOUNT_PAISE, "amount": AMOUNT_PAISE / 100} for r in rows]


async def open_orders(conn: asyncpg.Connection, n: int, tag: str, prefix: str) -> list[dict]:
    """`n` pending bookings, each with an open order `<prefix>1` … `<prefix>n`."""
    bookings = await pending_bookings(conn, n, tag)
    await conn.execute(_ORDERS.format(prefix=prefix, amount=AMOUNT_PAISE),
                       [b["booking_id"] for b in bookings], [b["customer_id"] for b in bookings])
    for i, b in enumerate(bookings, 1):
        b["order_id"] = f"{prefix}{i}"
    return bookings


def captured_body(order_id: str, payment_id: str) -> bytes:
    return webhook_body("payment.captured", {
        "id": payment_id, "entity": "payment", "amount": AMOUNT_PAISE, "currency": "INR",
        "status": "captured", "order_id": order_id, "method": "card", "captured": True,
        "description": "A6 Cars booking", "email": "bench@example.com",
        "contact": "+919000090000", "fee": 3540, "tax": 540, "created_at": 1_700_000_000,
    })


def write_deliveries(path: Path, orders: list[dict], tag: str) -> None:
    """One line per order: signature TAB event id TAB body (what bench/lua/webhook.lua reads)."""
    with path.open("w") as f:
        for o in orders:
            body = captured_body(o["order_id"], f"pay_B{tag}{o['booking_id']}")
            assert b"\t" not in body and b"\n" not in body
            f.write(f"{webhook_signature(body, SANDBOX_WEBHOOK_SECRET)}\t"
                    f"evt_{tag}{o['booking_id']}\t{body.decode()}\n")


def sample_payload(order_id: str = "order_x", payment_id: str = "pay_x") -> dict:
    return json.loads(captured_body(order_id, payment_id))
