"""payment-status reads batched into one query (order_service.handlers.status_reads): each
caller gets its own booking's answer, with its owner check, whatever shares its batch."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from order_service import handlers as orders
from shared import status_batch
from shared.coalesce import Coalescer
from shared.http import DB_ERRORS, HttpError
from testkit.factories import make_booking

_orders = itertools.count(1)


async def add_payment(pool, booking: dict, status: str, payment_id: str | None = None) -> None:
    n = next(_orders)
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status, razorpay_payment_id, captured_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7,"
        "         CASE WHEN $6 = 'captured' THEN now() END)",
        booking["booking_id"], booking["customer_id"], f"order_reads{n}_{id(pool)}",
        f"rcpt-reads-{n}", booking["amount_paise"], status, payment_id)


async def answer(reads, booking_id: int, customer_id: int | None = None):
    try:
        return await orders.payment_status(reads, booking_id, customer_id)
    except HttpError as exc:
        return exc.status, exc.message


async def test_one_batch_answers_every_caller_with_its_own_booking(pool):
    pending, retried, paid, nothing = [await make_booking(pool) for _ in range(4)]
    await add_payment(pool, pending, "created")
    await add_payment(pool, retried, "failed")  # a failed order, then a paid one
    await add_payment(pool, retried, "captured", "pay_reads_retried")
    await add_payment(pool, paid, "captured", "pay_reads_paid")
    await add_payment(pool, nothing, "failed")

    batches = []

    async def recording_fetch(keys):
        batches.append(keys)
        return await orders.read_statuses(pool, keys)

    reads = Coalescer(recording_fetch, max_batch=status_batch.MAX_READS,
                      in_flight=status_batch.IN_FLIGHT)
    wanted = [
        (pending["booking_id"], None),
        (retried["booking_id"], retried["customer_id"]),
        (paid["booking_id"], paid["customer_id"]),
        (paid["booking_id"], pending["customer_id"]),  # not this customer's booking
        (nothing["booking_id"], None),
        (10**12, None),  # no such booking
        (pending["booking_id"], None),  # asked twice
    ]
    got = await asyncio.gather(*(answer(reads, b, c) for b, c in wanted))
    assert got == [
        {"status": "pending", "paid": False, "razorpay_payment_id": None},
        {"status": "paid", "paid": True, "razorpay_payment_id": "pay_reads_retried"},
        {"status": "paid", "paid": True, "razorpay_payment_id": "pay_reads_paid"},
        (404, orders.PAYMENT_NOT_FOUND),
        {"status": "failed", "paid": False, "razorpay_payment_id": None},
        (404, orders.PAYMENT_NOT_FOUND),
        {"status": "pending", "paid": False, "razorpay_payment_id": None},
    ]
    # the first reads went alone (as many as may be in flight), the rest waited and went
    # together
    first = status_batch.IN_FLIGHT
    assert batches == [*([key] for key in wanted[:first]), wanted[first:]]


async def test_a_read_sees_what_committed_before_it_was_asked(pool):
    """Coalescing never answers from a batch sent before the call: read-your-writes."""
    booking = await make_booking(pool)
    reads = orders.status_reads(pool)
    await add_payment(pool, booking, "created")
    assert (await answer(reads, booking["booking_id"]))["status"] == "pending"
    await pool.execute("UPDATE payments SET status = 'captured', razorpay_payment_id = 'pay_ryw',"
                       " captured_at = now() WHERE booking_id = $1", booking["booking_id"])
    assert (await answer(reads, booking["booking_id"]))["paid"] is True


async def test_a_database_failure_reaches_every_caller_of_the_batch(pool, base_settings):
    from shared.db import create_pool

    own = await create_pool(base_settings)
    reads = orders.status_reads(own)
    await own.close()  # the database "goes away" under the reads
    results = await asyncio.gather(*(answer(reads, n) for n in (1, 2, 3)),
                                   return_exceptions=True)
    # what shared/http's error middleware answers with a 503 "retry"
    assert all(isinstance(r, DB_ERRORS) for r in results), results
    with pytest.raises(DB_ERRORS):
        await answer(reads, 4)
