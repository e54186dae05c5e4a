"""Fixtures for the end-to-end tests: one stack of real processes for the e2e package."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest

from shared.settings import SANDBOX_KEY_SECRET, SANDBOX_WEBHOOK_SECRET, load_settings
from shared.signatures import checkout_signature
from testkit.api_client import ADMIN_TOKEN
from testkit.stack import OLD_WEBHOOK_SECRET, running_stack


# Stopped once the e2e tests are done: the stack shares the run's database, and its mail
# sender and relay must not act on rows the tests after them write and then inspect.
@pytest.fixture(scope="package")
def stack(database_url, amqp_url):
    with running_stack(database_url, amqp_url) as stack:
        yield stack
        # Whatever the e2e tests ran, and in whatever order: no process logged a secret.
        leaks = asyncio.run(log_leaks(stack.logs(), database_url))
    assert leaks == [], f"logs hold secrets or payment ids: {len(leaks)} values"


async def log_leaks(logs: str, database_url: str) -> list[str]:
    """Every secret, signature, order id and payment id the run has seen that appears in
    `logs`."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT razorpay_order_id, razorpay_payment_id FROM payments"
            " UNION SELECT razorpay_order_id, razorpay_payment_id FROM webhook_events")
    finally:
        await conn.close()
    order_ids = {r["razorpay_order_id"] for r in rows if r["razorpay_order_id"]}
    payment_ids = {r["razorpay_payment_id"] for r in rows if r["razorpay_payment_id"]}
    signatures = {checkout_signature(o, p, SANDBOX_KEY_SECRET)
                  for o in order_ids for p in payment_ids}
    secrets = {SANDBOX_KEY_SECRET, SANDBOX_WEBHOOK_SECRET, OLD_WEBHOOK_SECRET,
               load_settings().pass_signing_secret, ADMIN_TOKEN}
    return sorted(v for v in payment_ids | order_ids | signatures | secrets if v in logs)


@pytest.fixture(scope="session")
async def http():
    async with aiohttp.ClientSession() as session:
        yield session
