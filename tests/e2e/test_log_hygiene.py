"""Every log line every process wrote is free of secrets, signatures and payment ids. This
test checks after one full payment; the `stack` fixture checks again when the session ends."""

import pytest

from testkit.api_client import pay, verify
from tests.e2e.conftest import log_leaks
from tests.e2e.flows import booking_with_order

pytestmark = pytest.mark.e2e


async def test_logs_hold_no_secrets_signatures_or_payment_ids(stack, http, pool, database_url):
    booking, order_id = await booking_with_order(http, stack, pool)
    checkout = await pay(http, stack, order_id, "captured")
    assert (await verify(http, stack, booking, checkout))[0] == 200
    logs = stack.logs()
    assert '"msg": "order created"' in logs, "the payment's own lines should be there"
    assert await log_leaks(logs, database_url) == []
