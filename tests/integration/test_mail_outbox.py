"""notifier.mail_outbox.enqueue on the real schema: one row per dedupe key, in the caller's
transaction, only the kinds the table allows."""

from __future__ import annotations

import asyncio

import pytest

from notifier.mail_outbox import KINDS, UnknownCustomer, enqueue
from testkit.factories import make_booking


async def rows(pool, booking_id: int):
    return await pool.fetch(
        "SELECT kind, recipient, state, attempts, details, sent_at FROM notifications"
        " WHERE booking_id = $1 ORDER BY id", booking_id)


async def test_enqueue_once_per_dedupe_key_addressed_to_the_customer(pool):
    booking = await make_booking(pool)
    args = dict(booking_id=booking["booking_id"], customer_id=booking["customer_id"])
    async with pool.acquire() as conn:
        for kind in KINDS:  # every kind the contract names is accepted by the table
            assert await enqueue(conn, **args, kind=kind, dedupe_key=f"t:{kind}:{args}",
                                 details={"amount_paise": 500, "reason": "r"})
        assert not await enqueue(conn, **args, kind="refund_processed",
                                 dedupe_key=f"t:refund_processed:{args}", details={})
    found = await rows(pool, booking["booking_id"])
    assert [r["kind"] for r in found] == list(KINDS)
    email = await pool.fetchval("SELECT email FROM customers WHERE id=$1", args["customer_id"])
    assert {r["recipient"] for r in found} == {email}
    assert all(r["state"] == "pending" and r["attempts"] == 0 and r["sent_at"] is None
               for r in found)
    assert found[0]["details"] == {"amount_paise": 500, "reason": "r"}


async def test_enqueue_is_part_of_the_callers_transaction(pool):
    booking = await make_booking(pool)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await enqueue(conn, booking_id=booking["booking_id"],
                              customer_id=booking["customer_id"], kind="booking_cancelled",
                              dedupe_key=f"t:rollback:{booking['booking_id']}", details={})
                raise RuntimeError("the caller's change failed")
    assert await rows(pool, booking["booking_id"]) == []


async def test_enqueue_refuses_unknown_kinds_and_customers(pool):
    booking = await make_booking(pool)
    async with pool.acquire() as conn:
        with pytest.raises(ValueError):
            await enqueue(conn, booking_id=booking["booking_id"],
                          customer_id=booking["customer_id"], kind="sms", dedupe_key="t:x",
                          details={})
        with pytest.raises(UnknownCustomer):
            await enqueue(conn, booking_id=booking["booking_id"], customer_id=10**15,
                          kind="payment_failed", dedupe_key="t:nobody", details={})


async def test_enqueueing_notifies_no_channel(pool):
    """A NOTIFY in the confirmation's transaction would serialise its commit with every
    other notifying commit in the database; the sender is woken in process instead."""
    booking = await make_booking(pool)
    heard: list[str] = []
    async with pool.acquire() as listener, pool.acquire() as conn:
        await listener.add_listener("a6pay_mail", lambda *args: heard.append(args[2]))
        await enqueue(conn, booking_id=booking["booking_id"], customer_id=booking["customer_id"],
                      kind="booking_cancelled", dedupe_key=f"t:quiet:{booking['booking_id']}",
                      details={})
        await asyncio.sleep(0.3)  # a notification is delivered on commit, within milliseconds
        await listener.reset()  # the pool's connections carry no session state (no LISTEN)
    assert heard == []
