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
