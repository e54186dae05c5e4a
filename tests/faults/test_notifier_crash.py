"""The notifier is killed with SIGKILL in the middle of a burst of captures and started
again: every booking ends confirmed with exactly two passes and one confirmation, and the
inbox holds exactly one row per event (unacked messages were redelivered and absorbed)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ops.api_client import pay
from tests.faults.helpers import (
    bookings_with_orders,
    confirmed_count,
    inbox_rows_per_event,
    sigkill,
    wait_all_confirmed_once,
)

pytestmark = pytest.mark.e2e

BURST = 40


async def test_notifier_killed_mid_burst_confirms_every_booking_exactly_once(stack, http, pool):
    made = await bookings_with_orders(http, stack, pool, BURST)
    ids = [booking["booking_id"] for booking, _ in made]

    payments = asyncio.gather(*(pay(http, stack, order_id) for _, order_id in made))
    deadline = time.monotonic() + 30
    while (confirmed := await confirmed_count(pool, ids)) < 3:
        assert time.monotonic() < deadline, "the notifier confirmed nothing"
        await asyncio.sleep(0.02)
    await asyncio.to_thread(sigkill, stack, "notifier")
    at_kill = await confirmed_count(pool, ids)
    await payments
    await asyncio.sleep(1)  # captures keep arriving while it is down
    assert await confirmed_count(pool, ids) == at_kill  # nobody else confirms: it is dead
    assert 3 <= confirmed <= at_kill < BURST, "the kill did not land mid-burst"

    await asyncio.to_thread(stack.start, "notifier")
    await wait_all_confirmed_once(pool, ids, timeout=60)
    seen = await inbox_rows_per_event(pool, ids)
    assert len(seen) == BURST and set(seen.values()) == {1}
