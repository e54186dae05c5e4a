"""POST /api/passes/scan on order_service, against the real PostgreSQL: each pass used once,
atomically with the booking's move, and every refusal a JSON answer."""

from __future__ import annotations

import asyncio
import itertools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from order_service import pass_scans, staff
from order_service.app import create_app
from shared.booking_state import BookingStatus, can_transition
from shared.pass_tokens import pass_token
from testkit.factories import make_booking, make_confirmed_booking

SECRET = "itg-pass-secret"
OLD_SECRET = "itg-pass-secret-before-rotation"
STAFF = "itg-staff-token"
AUTH = {"Authorization": f"Bearer {STAFF}"}


@pytest.fixture(scope="module")
def settings(base_settings):
    return base_settings.model_copy(update={
        "pass_signing_secret": SECRET, "pass_signing_secrets_old": OLD_SECRET,
        "staff_api_token": STAFF})


@pytest.fixture
async def client(settings):
    app = create_app(settings, relay=False, reconciler=False)
    async with TestClient(TestServer(app)) as client:
        yield client


async def scan(client, token, headers=AUTH):
    response = await client.post("/api/passes/scan", json={"token": token}, headers=headers)
    return response.status, await response.json()


async def booking_row(pool, booking_id):
    return await pool.fetchrow("SELECT * FROM bookings WHERE id = $1", booking_id)


async def test_collection_then_return_moves_the_booking_and_records_each_scan(client, pool):
    booking = await make_confirmed_booking(pool, SECRET)
    status, body = await scan(client, booking["passes"]["collection"])
    assert status == 200, body
    assert body | {"scanned_at": None} == {
        "message": pass_scans.next_step(BookingStatus.COLLECTED), "scanned_at": None,
        "booking_id": booking["booking_id"], "kind": "collection", "result": "collected",
        "car": "Maruti Swift", "customer_name": "John Doe",
        "start_date": booking["start_date"].isoformat(),
        "end_date": booking["end_date"].isoformat()}
    row = await booking_row(pool, booking["booking_id"])
    assert (row["status"], row["collected_at"].isoformat()) == ("collected", body["scanned_at"])

    status, body = await scan(client, booking["passes"]["return"])
    assert (status, body["result"]) == (200, "returned"), body
    assert (await booking_row(pool, booking["booking_id"]))["status"] == "returned"
    scans = await pool.fetch("SELECT kind, result FROM pass_scans WHERE booking_id = $1"
                             " ORDER BY scanned_at", booking["booking_id"])
    assert [tuple(s) for s in scans] == [("collection", "collected"), ("return", "returned")]
    events = await pool.fetch(
        "SELECT body->'data' AS data FROM outbox WHERE routing_key = 'pass.scanned'"
        " AND (body->'data'->>'booking_id')::bigint = $1 ORDER BY created_at",
        booking["booking_id"])
    assert [(e["data"]["kind"], e["data"]["result"]) for e in events] == [
        ("collection", "collected"), ("return", "returned")]


async def test_the_same_pass_again_is_refused_with_when_it_was_used(client, pool):
    booking = await make_confirmed_booking(pool, SECRET)
    first = await scan(client, booking["passes"]["collection"])
    status, body = await scan(client, booking["passes"]["collection"])
    assert status == 409
    assert body["used_at"] == first[1]["scanned_at"]
    used = datetime.fromisoformat(first[1]["scanned_at"]).astimezone(ZoneInfo("Asia/Kolkata"))
    assert body["message"] == f"Pass already used at {used:%d %b %Y %H:%M} (Asia/Kolkata)"
    assert body["customer_name"] == "John Doe"  # the counter still sees whose it is


async def test_two_racing_scans_of_one_pass_record_it_once(settings, pool):
    booking = await make_confirmed_booking(pool, SECRET)
    token = booking["passes"]["collection"]
    answers = await asyncio.gather(*(pass_scans.scan_pass(pool, settings, token)
                                     for _ in range(2)))
    assert sorted(a.status for a in answers) == [200, 409], answers
    won = next(a for a in answers if a.status == 200)
    lost = next(a for a in answers if a.status == 409)
    assert lost.body["used_at"] == won.body["scanned_at"]
    assert await pool.fetchval("SELECT count(*) FROM pass_scans WHERE booking_id = $1",
                               booking["booking_id"]) == 1
    assert await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE routing_key = 'pass.scanned'"
        " AND (body->'data'->>'booking_id')::bigint = $1", booking["booking_id"]) == 1


async def test_the_return_before_the_collection_is_refused(client, pool):
    booking = await make_confirmed_booking(pool, SECRET)
    status, body = await scan(client, booking["passes"]["return"])
    assert (status, body["message"]) == (
        409, "Car not collected yet: scan the collection pass first")
    assert (await booking_row(pool, booking["booking_id"]))["status"] == "confirmed"
    assert await pool.fetchval("SELECT count(*) FROM pass_scans WHERE booking_id = $1",
                               booking["booking_id"]) == 0


async def test_revoked_cancelled_and_refunded_are_gone(client, pool):
    revoked, cancelled, refunded = [await make_confirmed_booking(pool, SECRET) for _ in "abc"]
    await pool.execute("UPDATE passes SET revoked_at = now() WHERE booking_id = $1",
                       revoked["booking_id"])
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       cancelled["booking_id"])
    await pool.execute("UPDATE payments SET refunded_paise = amount_paise WHERE booking_id = $1",
                       refunded["booking_id"])
    answers = [await scan(client, b["passes"]["collection"])
               for b in (revoked, cancelled, refunded)]
    assert answers == [(410, body | {"message": message}) for (_, body), message in zip(
        answers, ["Pass revoked: do not hand over the car",
                  "Booking cancelled: do not hand over the car",
                  "Booking refunded: do not hand over the car"], strict=True)]
    assert all(body["customer_name"] == "John Doe" for _, body in answers)


async def test_a_car_out_refunded_meanwhile_is_taken_back_not_recorded(client, pool, settings):
    booking = await make_confirmed_booking(pool, SECRET)
    assert (await scan(client, booking["passes"]["collection"]))[0] == 200
    await pool.execute("UPDATE payments SET refunded_paise = amount_paise WHERE booking_id = $1",
                       booking["booking_id"])
    status, body = await scan(client, booking["passes"]["return"])
    assert (status, body["message"]) == (410, "Booking refunded: take the keys, call the office")


async def test_outside_the_rental_window_says_the_window(client, pool, settings):
    later = await make_confirmed_booking(pool, SECRET, start=date.today() + timedelta(days=5))
    status, body = await scan(client, later["passes"]["collection"])
    assert status == 409 and body["message"].startswith("Outside the rental window")
    window = pass_scans.counter_for(settings).window(later["start_date"], later["end_date"])
    assert (body["window_opens"], body["window_closes"]) == (
        window.opens.isoformat(), window.closes.isoformat())
    assert window.opens.utcoffset() == timedelta(hours=5, minutes=30)  # Asia/Kolkata
    # within the grace period before the first day: it scans
    grace = await make_confirmed_booking(pool, SECRET, start=date.today() + timedelta(days=1))
    assert (await scan(client, grace["passes"]["collection"]))[0] == 200


async def test_a_pass_signed_with_a_rotated_out_secret_still_scans(client, pool):
    booking = await make_confirmed_booking(pool, OLD_SECRET)
    assert (await scan(client, booking["passes"]["collection"]))[0] == 200


@pytest.mark.parametrize("token", [
    "garbage", "A6P2.00000000.1.collection." + "0" * 32,
    pass_token(1, "collection", "a secret we never had"), "x" * 200])
async def test_a_token_we_did_not_sign_is_a_400(client, token):
    assert await scan(client, token) == (400, {"message": pass_scans.NOT_OURS})


async def test_a_signed_token_other_than_the_one_issued_is_a_400(client, pool):
    booking = await make_confirmed_booking(pool, SECRET)
    other = pass_token(booking["booking_id"], "collection", OLD_SECRET)  # ours, not issued
    assert await scan(client, other) == (400, {"message": pass_scans.NOT_OURS})


async def test_an_unpaid_booking_has_no_valid_pass(client, pool):
    booking = await make_booking(pool)
    status, body = await scan(client, pass_token(booking["booking_id"], "collection", SECRET))
    assert status == 409 and body["message"].startswith("Booking not paid yet")


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": 5}, {"token": "t" * 201},
                                  [], "text"])
async def test_bad_bodies_are_400_json(client, body):
    response = await client.post("/api/passes/scan", json=body, headers=AUTH)
    assert response.status == 400
    assert isinstance((await response.json())["message"], str)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": STAFF}, {"Authorization": "Basic x"}])
async def test_no_or_a_wrong_staff_token_is_401(client, headers):
    assert await scan(client, "anything", headers) == (401, {"message": staff.STAFF_REQUIRED})


async def test_the_admin_token_is_not_a_staff_token(settings, pool):
    app = create_app(settings.model_copy(update={"admin_api_token": "adm"}),
                     relay=False, reconciler=False)
    async with TestClient(TestServer(app)) as client:
        assert (await scan(client, "x", {"Authorization": "Bearer adm"}))[0] == 401


async def test_disabled_without_a_staff_token(settings):
    app = create_app(settings.model_copy(update={"staff_api_token": ""}),
                     relay=False, reconciler=False)
    async with TestClient(TestServer(app)) as client:
        assert await scan(client, "x", {"Authorization": "Bearer "}) == (
            403, {"message": staff.STAFF_DISABLED})


async def test_check_pass_tells_what_a_scan_would_and_writes_nothing(settings, pool):
    booking = await make_confirmed_booking(pool, SECRET)
    token = booking["passes"]["collection"]
    for _ in range(2):
        checked = await pass_scans.check_pass(pool, settings, token)
        assert (checked["valid"], checked["booking_status"]) == (True, "confirmed")
        assert checked["scan"] == {"status": 200, "message": "Would record: collected"}
    assert await pool.fetchval("SELECT count(*) FROM pass_scans WHERE booking_id = $1",
                               booking["booking_id"]) == 0
    returned = await pass_scans.check_pass(pool, settings, booking["passes"]["return"])
    assert returned["valid"] is True  # a good pass, but not yet: the car is not out
    assert returned["scan"]["status"] == 409
    await pass_scans.scan_pass(pool, settings, token)
    used = await pass_scans.check_pass(pool, settings, token)
    assert (used["valid"], used["scan"]["status"], used["booking_status"]) == (
        False, 409, "collected")
    assert used["used_at"] is not None
    forged = await pass_scans.check_pass(pool, settings, token[:-1] + "x")
    assert forged == {"valid": False, "reason": "not a pass we signed",
                      "message": pass_scans.NOT_OURS}


async def test_the_database_allows_exactly_the_state_machines_moves(pool):
    """Every (from, to) pair written straight to the row: the trigger agrees with
    shared/booking_state.py on each."""
    for current, target in itertools.product(BookingStatus, BookingStatus):
        if current is target:
            continue
        booking_id = (await make_booking(pool))["booking_id"]
        async with pool.acquire() as conn:
            # the row put in `current` by the shortest allowed path
            for step in _path_to(current):
                await conn.execute("UPDATE bookings SET status = $2 WHERE id = $1",
                                   booking_id, step.value)
            try:
                await conn.execute("UPDATE bookings SET status = $2 WHERE id = $1",
                                   booking_id, target.value)
                allowed = True
            except asyncpg.CheckViolationError:
                allowed = False
        assert allowed is can_transition(current, target), (current, target)


def _path_to(status: BookingStatus) -> list[BookingStatus]:
    return {
        BookingStatus.PENDING: [],
        BookingStatus.CONFIRMED: [BookingStatus.CONFIRMED],
        BookingStatus.COLLECTED: [BookingStatus.CONFIRMED, BookingStatus.COLLECTED],
        BookingStatus.RETURNED: [BookingStatus.CONFIRMED, BookingStatus.COLLECTED,
                                 BookingStatus.RETURNED],
        BookingStatus.CANCELLED: [BookingStatus.CANCELLED],
    }[status]


async def test_a_booking_whose_car_is_out_cannot_be_cancelled(settings, pool):
    booking = await make_confirmed_booking(pool, SECRET)
    await pass_scans.scan_pass(pool, settings, booking["passes"]["collection"])
    app = create_app(settings.model_copy(update={"admin_api_token": "adm"}),
                     relay=False, reconciler=False)
    async with TestClient(TestServer(app)) as client:
        response = await client.post(
            f"/api/razorpay/bookings/{booking['booking_id']}/cancel", json={},
            headers={"Authorization": "Bearer adm", "Idempotency-Key": "car-out"})
        assert (response.status, await response.json()) == (409, {
            "message": "Booking can no longer be cancelled: the booking is collected"})
    assert (await booking_row(pool, booking["booking_id"]))["status"] == "collected"


async def test_a_pass_mailed_before_key_ids_still_scans(client, pool):
    from tests.support.pass_tokens import legacy_token

    booking = await make_confirmed_booking(pool, OLD_SECRET)
    old = legacy_token(booking["booking_id"], "collection", OLD_SECRET)
    await pool.execute("UPDATE passes SET token = $2 WHERE booking_id = $1 AND kind ="
                       " 'collection'", booking["booking_id"], old)
    assert (await scan(client, old))[0] == 200
