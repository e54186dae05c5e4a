"""Runs last in the e2e session: every log line every process wrote must be free of
secrets, signatures and payment identifiers."""

import pytest

from ops.api_client import ADMIN_TOKEN, pay, verify
from ops.stack import OLD_WEBHOOK_SECRET
from shared.settings import SANDBOX_KEY_SECRET, SANDBOX_WEBHOOK_SECRET, load_settings
from shared.signatures import checkout_signature
from tests.e2e.flows import booking_with_order

pytestmark = pytest.mark.e2e


async def test_logs_hold_no_secrets_signatures_or_payment_ids(stack, http, pool):
    # at least one full payment in this session, whatever ran before
    booking, order_id = await booking_with_order(http, stack, pool)
    checkout = await pay(http, stack, order_id, "captured")
    assert (await verify(http, stack, booking, checkout))[0] == 200
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT razorpay_order_id, razorpay_payment_id FROM payments"
            " UNION SELECT razorpay_order_id, razorpay_payment_id FROM webhook_events")
    order_ids = {r["razorpay_order_id"] for r in rows if r["razorpay_order_id"]}
    payment_ids = {r["razorpay_payment_id"] for r in rows if r["razorpay_payment_id"]}
    signatures = {checkout_signature(o, p, SANDBOX_KEY_SECRET)
                  for o in order_ids for p in payment_ids}
    secrets = {SANDBOX_KEY_SECRET, SANDBOX_WEBHOOK_SECRET, OLD_WEBHOOK_SECRET,
               load_settings().pass_signing_secret, ADMIN_TOKEN}
    logs = stack.logs()
    assert len(logs.splitlines()) > 50, "the services should have logged something"
    assert order_id in {o for o in order_ids} and checkout["razorpay_payment_id"] in payment_ids
    leaks = [v for v in payment_ids | order_ids | signatures | secrets if v in logs]
    assert leaks == []
