"""Refunds, disputes and second captures: each module runs on a database of its own, with a
sandbox that leaves refunds pending, and reaches it through our Razorpay client."""

from __future__ import annotations

import pytest

from shared.razorpay_client import RazorpayClient
from testkit import infra
from testkit.inprocess import running_sandbox


@pytest.fixture(scope="module")
async def own(base_settings):
    """A database of this module's own: the e2e stack's order_service runs its refund worker
    on the shared one, and could claim these refunds (and send them to its own sandbox)
    while a test drives the worker's pass itself."""
    async with infra.own_database(base_settings) as (own_settings, own_pool):
        yield own_settings, own_pool


@pytest.fixture(scope="module")
async def settings(own):
    async with running_sandbox(own[0], sandbox_refund_delay_seconds=3600) as settings:
        yield settings


@pytest.fixture
def pool(own):
    return own[1]


@pytest.fixture
async def razorpay(settings):
    client = RazorpayClient(settings)
    yield client
    client.close()
