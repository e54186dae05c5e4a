"""Unique test data: customers, cars and bookings straight into the test database."""

from __future__ import annotations

import itertools
from datetime import date

import asyncpg

_seq = itertools.count(1)


async def make_booking(
    pool: asyncpg.Pool, amount_paise: int = 150_000, *, name: str = "John Doe"
) -> dict:
    n = next(_seq)
    async with pool.acquire() as conn, conn.transaction():
        customer_id = await conn.fetchval(
            "INSERT INTO customers (name, email, phone) VALUES ($1, $2, $3) RETURNING id",
            name,
            f"customer{n}@example.com",
            "+919000090000",
        )
        car_id = await conn.fetchval(
            "INSERT INTO cars (name, registration) VALUES ('Maruti Swift', $1) RETURNING id",
            f"KA01AB{n:04d}",
        )
        booking_id = await conn.fetchval(
            "INSERT INTO bookings (customer_id, car_id, amount_paise, start_date, end_date)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            customer_id,
            car_id,
            amount_paise,
            date(2025, 12, 28),
            date(2025, 12, 30),
        )
    return {
        "booking_id": booking_id,
        "customer_id": customer_id,
        "amount_paise": amount_paise,
        "amount": amount_paise / 100,
    }


async def make_confirmed_booking(
    pool: asyncpg.Pool, pass_secret: str, *, start: date | None = None, days: int = 2
) -> dict:
    """A paid, confirmed booking with its two passes, as the notifier leaves one; the rental
    starts `start` (today by default) and lasts `days` days. Adds `passes`: kind -> token."""
    from datetime import timedelta

    from shared.pass_tokens import PASS_KINDS, pass_token

    booking = await make_booking(pool)
    booking_id = booking["booking_id"]
    start = start or date.today()
    tokens = {kind: pass_token(booking_id, kind, pass_secret) for kind in PASS_KINDS}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
            " amount_paise, status, razorpay_payment_id, captured_at)"
            " VALUES ($1, $2, $3, 'r', $4, 'captured', $5, now())",
            booking_id, booking["customer_id"], f"order_Conf{booking_id:010d}",
            booking["amount_paise"], f"pay_Conf{booking_id:012d}")
        await conn.execute(
            "UPDATE bookings SET status = 'confirmed', confirmed_at = now(), start_date = $2,"
            " end_date = $3 WHERE id = $1", booking_id, start, start + timedelta(days=days))
        await conn.executemany(
            "INSERT INTO passes (booking_id, kind, token) VALUES ($1, $2, $3)",
            [(booking_id, kind, token) for kind, token in tokens.items()])
    return {**booking, "passes": tokens, "start_date": start,
            "end_date": start + timedelta(days=days)}
