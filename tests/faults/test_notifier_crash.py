"""The notifier is killed with SIGKILL in the middle of a burst of captures and started
again: every booking ends confirmed with exactly two passes and one confirmation, and the
inbox holds exactly one row per event (unacked messages were redelivered and absorbed).
Every confirmation mail reaches the SMTP server (the stack's catcher): once, or, if the
kill fell between the server's "accepted" and the row's "sent", again with the same
Message-ID, never as a second, different mail."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest

from testkit.api_client import pay
from testkit.infra import eventually
from tests.faults.helpers import (
    bookings_with_orders,
    confirmed_count,
    inbox_rows_per_event,
    sigkill,
    wait_all_confirmed_once,
)

pytestmark = pytest.mark.e2e

BURST = 40
FIRST = 12


async def test_notifier_killed_mid_burst_confirms_every_booking_exactly_once(stack, http, pool):
    made = await bookings_with_orders(http, stack, pool, BURST)
    ids = [booking["booking_id"] for booking, _ in made]

    # The first part of the burst is paid together and the kill lands once a few are
    # confirmed, with the rest of that part still in flight; the remainder is paid while
    # the notifier is dead, so the kill always lands mid-burst however fast it runs.
    first, rest = made[:FIRST], made[FIRST:]
    payments = asyncio.gather(*(pay(http, stack, order_id) for _, order_id in first))
    deadline = time.monotonic() + 30
    while (confirmed := await confirmed_count(pool, ids)) < 3:
        assert time.monotonic() < deadline, "the notifier confirmed nothing"
        await asyncio.sleep(0.02)
    await asyncio.to_thread(sigkill, stack, "notifier")
    at_kill = await confirmed_count(pool, ids)
    await payments
    await asyncio.gather(*(pay(http, stack, order_id) for _, order_id in rest))
    await asyncio.sleep(1)  # captures keep arriving while it is down
    assert await confirmed_count(pool, ids) == at_kill  # nobody else confirms: it is dead
    assert 3 <= confirmed <= at_kill <= FIRST

    await asyncio.to_thread(stack.start, "notifier")
    await wait_all_confirmed_once(pool, ids, timeout=60)
    seen = await inbox_rows_per_event(pool, ids)
    assert len(seen) == BURST and set(seen.values()) == {1}

    async def all_sent():
        states = await pool.fetch(
            "SELECT state FROM notifications WHERE booking_id = ANY($1::bigint[])"
            " AND kind = 'payment_confirmed'", ids)
        return len(states) == BURST and all(r["state"] == "sent" for r in states)

    await eventually(all_sent, timeout=90, interval=0.5)
    async with http.get(f"{stack.mail_catcher}/api/mails") as answer:
        mails = await answer.json()
    ids_by_booking = defaultdict(set)
    for mail in mails:
        for booking_id in ids:
            if f"#{booking_id} " in mail["subject"]:
                ids_by_booking[booking_id].add(mail["message_id"])
    assert sorted(ids_by_booking) == sorted(ids)
    assert all(len(message_ids) == 1 for message_ids in ids_by_booking.values())
