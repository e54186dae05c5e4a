"""`WORKERS=2`: two processes of every service share each port and two notifiers share the
queue; duplicated webhooks and verifies racing across them still take effect once."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from testkit.api_client import create_order, pay, verify
from testkit.factories import make_booking
from testkit.stack import own_stack
from tests.faults.helpers import booking_states, wait_all_confirmed_once

pytestmark = pytest.mark.e2e

BOOKINGS = 8


@pytest.fixture(scope="module")
async def replicated(base_settings):
    """Two of everything, on a database and vhost of its own: no other stack's relay or
    notifier may do this test's work."""
    env = {"WORKERS": "2", "CAPTURE_ON_VERIFY": "true", "DB_POOL_MAX": "3"}
    async with own_stack(base_settings, env) as (stack, pool):
        yield stack, pool


async def test_two_workers_of_everything_apply_each_payment_once(replicated):
    stack, pool = replicated
    assert {"gateway-2", "notifier-2", "webhook_service-2"} <= set(stack.procs)
    # A new connection per request, so the kernel spreads them over both gateways.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        bookings = [await make_booking(pool) for _ in range(BOOKINGS)]
        created = await asyncio.gather(*(create_order(http, stack, b)
                                         for b in bookings for _ in range(2)))
        assert {c[0] for c in created} == {200}, created
        orders = [c[1]["order_id"] for c in created]
        assert orders[0::2] == orders[1::2]  # both creates of a booking: one order
        # Authorized only: every verify and every webhook delivery tries to capture it.
        checkouts = await asyncio.gather(*(pay(http, stack, order, "authorized", duplicate=2)
                                           for order in orders[0::2]))
        verified = await asyncio.gather(*(verify(http, stack, b, c)
                                          for b, c in zip(bookings, checkouts, strict=True)
                                          for _ in range(2)))
        assert {v[0] for v in verified} == {200}, verified
        bodies = [v[1] for v in verified]
        assert bodies[0::2] == bodies[1::2]  # the same answer, passes included

    ids = [b["booking_id"] for b in bookings]
    await wait_all_confirmed_once(pool, ids, timeout=30)
    await asyncio.sleep(2)  # late duplicate webhooks must change nothing
    states = await booking_states(pool, ids)
    assert all(s["captured"] == 1 and s["passes"] == 2 and s["confirmations"] == 1
               for s in states.values()), states

    logs = {key: (stack.log_dir / f"{key}.log").read_text() for key in stack.procs}
    for gateway in ("gateway", "gateway-2"):
        assert '"msg": "request"' in logs[gateway], f"{gateway} served nothing"
    for notifier in ("notifier", "notifier-2"):
        assert '"msg": "consuming"' in logs[notifier], f"{notifier} never consumed"
    # Each process of a service the gateway calls listens on a socket of its own, which is
    # where the gateways reached them (tests/integration/test_gateway.py: the way through).
    for service in ("order_service", "verification_service", "webhook_service"):
        for key, worker in ((service, 1), (f"{service}-2", 2)):
            path = stack.log_dir / "sockets" / f"{service}-{worker}.sock"
            assert path.is_socket(), path
            assert json.dumps(str(path)) in logs[key], f"{key} does not listen on {path}"
