"""Settlements through the real processes: the sandbox's `settlement.processed` reaches
webhook_service through the gateway, `a6pay recon` reconciles the day, and the admin API's
settlements list and ledger.csv answer through the gateway."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from testkit.api_client import ADMIN_TOKEN, call, pay, random_admin_client
from testkit.infra import eventually
from tests.e2e.flows import a6pay, booking_with_order, wait_paid

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_a_settlement_reaches_the_admin_api_and_the_ledger(http, stack, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    await pay(http, stack, order_id)
    await wait_paid(http, stack, booking["booking_id"])
    status, made, _ = await call(http, "POST", f"{stack.sandbox}/sandbox/settlements", json={})
    assert status == 200 and made["settlement"], made
    settlement_id = made["settlement"]["id"]

    async def listed():
        status, body, _ = await call(http, "GET", f"{stack.gateway}/api/razorpay/settlements",
                                     headers=ADMIN)
        assert status == 200, body
        return next((s for s in body["settlements"] if s["settlement_id"] == settlement_id),
                    None)

    assert (await eventually(listed))["amount"] == made["settlement"]["amount"] / 100

    today = datetime.now(UTC).date().isoformat()
    report = a6pay(stack, "recon", "--date", today)
    assert [s["matched"] for s in report["settlements"]
            if s["settlement_id"] == settlement_id] == [True]

    status, text, headers = await call(
        http, "GET", f"{stack.gateway}/api/razorpay/ledger.csv",
        params={"from": today, "to": today}, headers=ADMIN)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = [r for r in csv.DictReader(io.StringIO(text))
            if r["booking_id"] == str(booking["booking_id"])]
    assert [(r["type"], r["amount"], r["fee"], r["settlement_id"]) for r in rows] == [
        ("payment", "1500.00", "35.40", settlement_id)]

    status, body, _ = await call(http, "GET", f"{stack.gateway}/api/razorpay/settlements",
                                 client=random_admin_client())  # the backend's network, no token
    assert status == 401 and "message" in body
