"""Fixtures the integration tests of several modules share."""

from __future__ import annotations

import pytest

from ops.mail_catcher import MailCatcher
from testkit.history import add_paid_history
from testkit.infra import free_port, own_database
from tests.support.plans import HISTORY


@pytest.fixture(scope="module")
async def history_db(base_settings):
    async with own_database(base_settings) as (settings, pool):
        await add_paid_history(settings.database_url, HISTORY)
        booking = dict(await pool.fetchrow(
            "SELECT b.id AS booking_id, b.customer_id, p.razorpay_order_id AS order_id"
            " FROM bookings b JOIN payments p ON p.booking_id = b.id"
            " WHERE p.status = 'captured' ORDER BY b.id DESC LIMIT 1 OFFSET 100"))
        yield pool, booking


@pytest.fixture
async def catcher():
    """A real SMTP server on a free port; what it took is in `catcher.mails`."""
    catcher = MailCatcher()
    catcher.port = free_port()
    await catcher.start_smtp("127.0.0.1", catcher.port)
    yield catcher
    await catcher.stop()
