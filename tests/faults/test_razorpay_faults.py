"""Razorpay slow beyond our timeout, answering 5xx, dropping the connection, or refusing
it, during create-order, verify and reconciliation: a clear 5xx JSON answer, nothing
half-written (no payments row for a failed create, verify leaves the payment unpaid, a
failed reconcile changes nothing), and the right result once Razorpay is back."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import pytest

from order_service import handlers as orders
from order_service.reconciler import reconcile
from shared.http import HttpError
from shared.razorpay_client import RazorpayClient
from shared.settings import SANDBOX_KEY_ID, SANDBOX_KEY_SECRET
from testkit.api_client import create_order, pay, payment_status, set_fault, verify
from testkit.factories import make_booking
from testkit.infra import free_port
from tests.e2e.flows import a6pay
from tests.faults.helpers import booking_states, wait_all_confirmed_once
from verification_service import handlers as verification

pytestmark = pytest.mark.e2e

TIMED_OUT = "Payment provider timed out. Please retry."
UNAVAILABLE = "Payment provider is unavailable. Please retry."
FAULTS = {  # sandbox fault mode -> what our API answers
    "slow": (504, TIMED_OUT),
    "error_500": (503, UNAVAILABLE),
    "error_502": (503, UNAVAILABLE),
    "reset": (503, UNAVAILABLE),
}


async def payment_rows(pool, booking_id: int) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT razorpay_order_id, status, receipt FROM payments WHERE booking_id = $1",
            booking_id)
        events = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE (body->'data'->>'booking_id')::bigint = $1",
            booking_id)
    return [dict(r) for r in rows] + [{"events": events}]


async def sandbox_orders(http, stack, receipt: str) -> list[dict]:
    token = base64.b64encode(f"{SANDBOX_KEY_ID}:{SANDBOX_KEY_SECRET}".encode()).decode()
    async with http.get(f"{stack.sandbox}/v1/orders", params={"receipt": receipt},
                        headers={"Authorization": f"Basic {token}"}) as answer:
        assert answer.status == 200
        return (await answer.json())["items"]


def fault(mode: str, path_prefix: str) -> dict:
    return {"mode": mode, "path_prefix": path_prefix, "delay_seconds": 2.5 if mode == "slow"
            else 0}


@pytest.mark.parametrize("mode", list(FAULTS))
async def test_create_order_fails_cleanly_and_is_retried_into_one_order(
    stack, http, pool, mode
):
    booking = await make_booking(pool)
    await set_fault(http, stack, **fault(mode, "/v1/orders"))
    status, body, _ = await create_order(http, stack, booking)
    assert (status, body) == (FAULTS[mode][0], {"message": FAULTS[mode][1]})
    assert await payment_rows(pool, booking["booking_id"]) == [{"events": 0}]

    await set_fault(http, stack, mode="none")
    if mode == "slow":
        await asyncio.sleep(2)  # the order the slow call may have made at Razorpay exists now
    status, body, _ = await create_order(http, stack, booking)
    assert status == 200, body
    [row, events] = await payment_rows(pool, booking["booking_id"])
    assert row["razorpay_order_id"] == body["order_id"] and events == {"events": 1}
    # however many creates reached Razorpay, the receipt names one order: ours
    assert [o["id"] for o in await sandbox_orders(http, stack, row["receipt"])] == [
        body["order_id"]]


@pytest.mark.parametrize("mode", list(FAULTS))
async def test_verify_fails_cleanly_and_succeeds_after_recovery(stack, http, pool, mode):
    booking = await make_booking(pool)
    status, body, _ = await create_order(http, stack, booking)
    assert status == 200, body
    checkout = await pay(http, stack, body["order_id"], enabled=False)  # no webhooks
    await set_fault(http, stack, **fault(mode, "/v1/payments"))
    status, answer, _ = await verify(http, stack, booking, checkout)
    assert (status, answer) == (FAULTS[mode][0], {"message": FAULTS[mode][1]})
    assert (await payment_status(http, stack, booking["booking_id"]))[1]["paid"] is False
    assert [r.get("status") for r in await payment_rows(pool, booking["booking_id"])] == [
        "created", None]

    await set_fault(http, stack, mode="none")
    status, answer, _ = await verify(http, stack, booking, checkout)
    assert status == 200, answer
    await wait_all_confirmed_once(pool, [booking["booking_id"]], timeout=15)


@pytest.mark.parametrize("mode", ["slow", "error_500", "reset"])
async def test_reconcile_survives_razorpay_faults_then_catches_up(stack, http, pool, mode):
    booking = await make_booking(pool)
    status, body, _ = await create_order(http, stack, booking)
    assert status == 200, body
    await pay(http, stack, body["order_id"], enabled=False)  # nobody tells us
    await set_fault(http, stack, **fault(mode, "/v1/orders"))
    summary = await asyncio.to_thread(a6pay, stack, "reconcile")
    assert summary["errors"] >= 1 and summary["errors"] == summary["checked"]
    assert summary["captured"] == 0
    assert (await payment_status(http, stack, booking["booking_id"]))[1]["paid"] is False

    await set_fault(http, stack, mode="none")
    summary = await asyncio.to_thread(a6pay, stack, "reconcile")
    assert summary["captured"] >= 1 and summary["errors"] == 0
    await wait_all_confirmed_once(pool, [booking["booking_id"]], timeout=15)


async def test_razorpay_refusing_connections_changes_nothing(stack, settings, http, pool):
    """The services' own code, in-process, pointed at a closed port, then at the sandbox."""
    refused = RazorpayClient(settings.model_copy(
        update={"razorpay_base_url": f"http://127.0.0.1:{free_port()}"}))
    sandbox = RazorpayClient(settings.model_copy(update={"razorpay_base_url": stack.sandbox}))
    paid = await make_booking(pool)
    status, body, _ = await create_order(http, stack, paid)
    assert status == 200, body
    checkout = await pay(http, stack, body["order_id"], enabled=False)
    fresh = await make_booking(pool)

    async def create(client):
        return await orders.create_order(
            pool, client, booking_id=fresh["booking_id"], customer_id=fresh["customer_id"],
            amount_paise=fresh["amount_paise"], reconcile_after=timedelta(hours=1))

    request = verification.VerifyRequest(
        checkout["razorpay_order_id"], checkout["razorpay_payment_id"],
        checkout["razorpay_signature"], paid["booking_id"], paid["customer_id"])
    with pytest.raises(HttpError) as failed_create:
        await create(refused)
    with pytest.raises(HttpError) as failed_verify:
        await verification.verify_payment(pool, refused, settings, request)
    summary = await reconcile(pool, refused, settings, everything=True)
    assert (failed_create.value.status, failed_create.value.message) == (503, UNAVAILABLE)
    assert (failed_verify.value.status, failed_verify.value.message) == (503, UNAVAILABLE)
    assert summary["errors"] == summary["checked"] >= 1 and summary["captured"] == 0
    assert await payment_rows(pool, fresh["booking_id"]) == [{"events": 0}]
    assert (await booking_states(pool, [paid["booking_id"]]))[paid["booking_id"]][
        "captured"] == 0

    order = await create(sandbox)
    assert order.order_id.startswith("order_")
    result = await verification.verify_payment(pool, sandbox, settings, request)
    assert result["razorpay_payment_id"] == checkout["razorpay_payment_id"]
    await wait_all_confirmed_once(pool, [paid["booking_id"]], timeout=15)
