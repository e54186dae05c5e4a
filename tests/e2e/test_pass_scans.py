"""Passes at the counter through the gateway, on a booking paid the real way: scanned once
each, in order, with the booking's move, the event published and consumed, `a6pay` showing
the scans."""

from __future__ import annotations

from datetime import date

from testkit.api_client import pay, scan_pass
from testkit.infra import eventually
from tests.e2e.flows import a6pay, booking_with_order, wait_confirmed, wait_paid


async def _passes(pool, booking_id) -> dict[str, str]:
    rows = await pool.fetch("SELECT kind, token FROM passes WHERE booking_id = $1", booking_id)
    return {row["kind"]: row["token"] for row in rows}


async def _consumed(pool, booking_id) -> bool:
    return await pool.fetchval(
        "SELECT count(*) = 2 FROM outbox o JOIN inbox i ON i.event_id = o.id"
        " WHERE o.routing_key = 'pass.scanned' AND o.published_at IS NOT NULL"
        " AND (o.body->'data'->>'booking_id')::bigint = $1 AND i.consumer = 'notifier'",
        booking_id)


async def test_the_counter_scans_a_paid_booking_out_and_back(stack, http, pool):
    booking, order_id = await booking_with_order(http, stack, pool)
    booking_id = booking["booking_id"]
    await pay(http, stack, order_id)
    await wait_paid(http, stack, booking_id)
    await wait_confirmed(pool, booking_id)
    # the rental starts today (the factory's dates are long past)
    await pool.execute("UPDATE bookings SET start_date = $2, end_date = $2 WHERE id = $1",
                       booking_id, date.today())
    passes = await _passes(pool, booking_id)

    status, body, _ = await scan_pass(http, stack, passes["return"])
    assert status == 409 and "collection pass first" in body["message"]
    status, collected, _ = await scan_pass(http, stack, passes["collection"])
    assert (status, collected["result"], collected["booking_id"]) == (200, "collected",
                                                                      booking_id)
    status, again, _ = await scan_pass(http, stack, passes["collection"])
    assert (status, again["used_at"]) == (409, collected["scanned_at"])
    status, returned, _ = await scan_pass(http, stack, passes["return"])
    assert (status, returned["result"]) == (200, "returned")

    shown = a6pay(stack, "booking", str(booking_id))
    assert shown["status"] == "returned"
    assert [(s["kind"], s["result"], s["scanned_at"]) for s in shown["scans"]] == [
        ("collection", "collected", collected["scanned_at"]),
        ("return", "returned", returned["scanned_at"])]
    checked = a6pay(stack, "check-pass", passes["collection"], exit_code=1)
    assert (checked["valid"], checked["used_at"]) == (False, collected["scanned_at"])
    await eventually(lambda: _consumed(pool, booking_id), timeout=20)


async def test_without_the_staff_token_the_gateway_answers_401(stack, http):
    for staff_token in (None, "wrong", "a6-e2e-admin-token"):
        status, body, headers = await scan_pass(http, stack, "A6P2.x", staff_token)
        assert (status, body) == (401, {"message": "Staff authentication required"})
        assert headers["WWW-Authenticate"] == "Bearer"


async def test_garbage_is_a_400_never_a_500(stack, http):
    for token in ("garbage", "A6P1.1.collection." + "0" * 32, "\u0000" * 50):
        status, body, _ = await scan_pass(http, stack, token)
        assert status == 400 and body["message"], (token, body)


async def test_the_staff_page_is_served_by_the_gateway(stack, http):
    async with http.get(f"{stack.gateway}/staff") as response:
        assert response.status == 200
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert '<script src="/staff/staff.js" defer>' in await response.text()
