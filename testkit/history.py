"""A paid-booking history written straight in SQL (generate_series), for the query-plan test
and `make bench`: what a database looks like after `n` bookings went through the system.

Per booking: the booking (95% confirmed, 5% pending with an order the reconciler gave up
on), its captured payment (for one in 20 a failed attempt before it), the webhook
delivery, both passes, the confirmation mail, two inbox rows and two published outbox rows.
Customers grow with it (one per 10 bookings). The rows are consistent by construction, so
the fill skips per-row triggers (foreign-key checks, the outbox NOTIFY) and, for big fills,
builds each table's indexes once afterwards instead of row by row, one table per
connection, as many at once as there are cores. Each table is filled in a transaction of
its own: a failure leaves every table's schema as it was (and possibly some tables filled).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import asyncpg

# The tables whose size grows with history: no query on a request path may scan them.
GROWING_TABLES = (
    "customers", "bookings", "payments", "webhook_events", "passes", "notifications",
    "inbox", "outbox",
)

_QR = "data:image/png;base64," + "A" * 200  # stands for a pass image; size is not the point

_FILL = """
INSERT INTO customers (id, name, email, phone, created_at)
SELECT {c0} + g, 'History Customer ' || g, 'history' || g || '@example.com', '+9190000' || g,
       now() - interval '400 days'
FROM generate_series(1, {customers}) g;

INSERT INTO bookings (id, customer_id, car_id, amount_paise, start_date, end_date, status,
                      confirmed_at, created_at)
SELECT {b0} + g, {c0} + 1 + g % {customers}, {car}, 100000 + (g % 50) * 1000,
       date '2025-01-01' + g % 600, date '2025-01-03' + g % 600,
       CASE WHEN g % 20 = 0 THEN 'pending' ELSE 'confirmed' END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE now() - ({n} - g) * interval '1 second' END,
       now() - ({n} - g) * interval '1 second' - interval '5 minutes'
FROM generate_series(1, {n}) g;

-- the captured payment, or the abandoned order of a pending booking
INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt, amount_paise,
                      status, razorpay_payment_id, captured_at, created_at, updated_at,
                      reconcile_attempts, next_reconcile_at)
SELECT {b0} + g, {c0} + 1 + g % {customers}, 'order_H{tag}' || g, 'a6-hist-{tag}-' || g,
       100000 + (g % 50) * 1000,
       CASE WHEN g % 20 = 0 THEN 'created' ELSE 'captured' END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE 'pay_H{tag}' || g END,
       CASE WHEN g % 20 = 0 THEN NULL ELSE now() - ({n} - g) * interval '1 second' END,
       now() - ({n} - g) * interval '1 second' - interval '4 minutes',
       now() - ({n} - g) * interval '1 second',
       CASE WHEN g % 20 = 0 THEN 12 ELSE 0 END, NULL
FROM generate_series(1, {n}) g;

-- a failed attempt before the capture, for one paid booking in 20
INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt, amount_paise,
                      status, razorpay_payment_id, failure_code, created_at, updated_at)
SELECT {b0} + g, {c0} + 1 + g % {customers}, 'order_HF{tag}' || g, 'a6-histf-{tag}-' || g,
       100000 + (g % 50) * 1000, 'failed', 'pay_HF{tag}' || g, 'BAD_REQUEST_ERROR',
       now() - ({n} - g) * interval '1 second' - interval '5 minutes',
       now() - ({n} - g) * interval '1 second' - interval '5 minutes'
FROM generate_series(10, {n}, 20) g;

INSERT INTO webhook_events (event_key, event_type, razorpay_order_id, razorpay_payment_id,
                            outcome, payload, received_at)
SELECT 'id:evt_H{tag}' || g, 'payment.captured', 'order_H{tag}' || g, 'pay_H{tag}' || g,
       'applied',
       jsonb_build_object('event', 'payment.captured', 'payload', jsonb_build_object(
           'payment', jsonb_build_object('entity', jsonb_build_object(
               'id', 'pay_H{tag}' || g, 'order_id', 'order_H{tag}' || g,
               'amount', 100000 + (g % 50) * 1000, 'currency', 'INR',
               'status', 'captured')))),
       now() - ({n} - g) * interval '1 second'
FROM generate_series(1, {n}) g WHERE g % 20 <> 0;

INSERT INTO passes (booking_id, kind, token, qr_data_url, created_at)
SELECT {b0} + g, k.kind, 'A6P1.' || ({b0} + g) || '.' || k.kind || '.history', '{qr}',
       now() - ({n} - g) * interval '1 second'
FROM generate_series(1, {n}) g, (VALUES ('collection'), ('return')) k(kind)
WHERE g % 20 <> 0;

INSERT INTO notifications (booking_id, customer_id, kind, dedupe_key, recipient, subject,
                           body, created_at, state, sent_at)
SELECT {b0} + g, {c0} + 1 + g % {customers}, 'payment_confirmed',
       'payment_confirmed:' || ({b0} + g), 'history' || (1 + g % {customers}) || '@example.com',
       'Booking #' || ({b0} + g) || ' confirmed: History Car',
       'Hi, your payment for History Car is confirmed. Show the collection pass when you'
       ' pick the car up and the return pass when you bring it back.',
       now() - ({n} - g) * interval '1 second', 'sent',
       now() - ({n} - g) * interval '1 second'
FROM generate_series(1, {n}) g WHERE g % 20 <> 0;

INSERT INTO inbox (consumer, event_id, processed_at)
SELECT 'notifier', gen_random_uuid(), now() - ({n} - g) * interval '1 second'
FROM generate_series(1, {n}) g, generate_series(1, 2) e;

INSERT INTO outbox (id, routing_key, body, created_at, published_at, attempts)
SELECT gen_random_uuid(), e.key, jsonb_build_object('type', e.key, 'booking_id', {b0} + g),
       now() - ({n} - g) * interval '1 second',
       now() - ({n} - g) * interval '1 second', 1
FROM generate_series(1, {n}) g, (VALUES ('order.created'), ('payment.captured')) e(key);
"""


# Indexes (and the unique / primary-key / exclusion constraints they back) of one table,
# except those a foreign key relies on.
_REBUILDABLE = """
SELECT c.conname,
       coalesce(pg_get_constraintdef(c.oid), pg_get_indexdef(i.indexrelid)) AS definition,
       i.indexrelid::regclass::text AS index_name
FROM pg_index i
LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')
WHERE i.indrelid = $1::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f'
                  AND f.conindid = i.indexrelid)
"""
REBUILD_INDEXES_FROM = 200_000  # below this, maintaining indexes row by row is cheaper


async def _drop_indexes(conn: asyncpg.Connection, table: str) -> list[str]:
    """Drops them in the open transaction; returns the statements that put them back."""
    restore = []
    for row in await conn.fetch(_REBUILDABLE, table):
        if row["conname"]:
            await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{row["conname"]}"')
            restore.append(
                f'ALTER TABLE {table} ADD CONSTRAINT "{row["conname"]}" {row["definition"]}')
        else:
            await conn.execute(f"DROP INDEX {row['index_name']}")
            restore.append(row["definition"])
    return restore


async def _fill_table(database_url: str, table: str, statements: list[str],
                      rebuild: bool) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            # Consistent by construction: no per-row foreign-key checks, no NOTIFY per insert.
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute("SET LOCAL maintenance_work_mem = '128MB'")
            restore = await _drop_indexes(conn, table) if rebuild else []
            for statement in statements:
                await conn.execute(statement)
            for statement in restore:
                await conn.execute(statement)
        if rebuild:
            # Set hint bits and the visibility map now: otherwise the first reads after the
            # fill dirty every page, and autovacuum rewrites the tables during the benchmark.
            await conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
    finally:
        await conn.close()


def _by_table(sql: str) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    for statement in filter(str.strip, sql.split(";\n")):
        table = statement.split("INSERT INTO ", 1)[1].split()[0]
        tables.setdefault(table, []).append(statement)
    return tables


async def _reserve(conn: asyncpg.Connection, sequence: str, count: int) -> int:
    """The id just before a block of `count` ids nobody else will be given."""
    last = await conn.fetchval("SELECT nextval($1::regclass)", sequence)
    await conn.execute("SELECT setval($1::regclass, $2)", sequence, last + count)
    return last


@dataclass(frozen=True)
class History:
    seconds: float
    first_booking: int  # every booking id from first to last is the history's, with a payment
    last_booking: int


async def add_paid_history(database_url: str, bookings: int, *, analyze: bool = True) -> History:
    """Append `bookings` bookings of history to the database."""
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        customers = max(1, bookings // 10)
        c0 = await _reserve(conn, "customers_id_seq", customers)
        b0 = await _reserve(conn, "bookings_id_seq", bookings)
        car = await conn.fetchval(
            "INSERT INTO cars (name, registration) VALUES ('History Car', 'KA00H0000')"
            " RETURNING id"
        )
        sql = _FILL.format(n=bookings, customers=customers, c0=c0, b0=b0, car=car,
                           tag=f"{b0:x}x", qr=_QR)
        gate = asyncio.Semaphore(os.cpu_count() or 2)
        rebuild = bookings >= REBUILD_INDEXES_FROM

        async def one(table: str, statements: list[str]) -> None:
            async with gate:
                await _fill_table(database_url, table, statements, rebuild)

        # the biggest tables first, so the last to finish is a small one
        order = ("inbox", "outbox", "passes", "payments", "webhook_events", "notifications",
                 "bookings", "customers")
        tables = _by_table(sql)
        await asyncio.gather(*(one(t, tables[t]) for t in order))
        if rebuild:
            await conn.execute("CHECKPOINT")  # write it out before anything is measured
        elif analyze:
            await conn.execute("ANALYZE " + ", ".join(GROWING_TABLES))
    finally:
        await conn.close()
    return History(time.perf_counter() - started, b0 + 1, b0 + bookings)
