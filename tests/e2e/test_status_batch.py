"""payment-status requests in flight share calls to order_service (gateway/status_batch.py):
every request still gets exactly what order_service's own route answers for it."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.errors import UNAVAILABLE
from shared import status_batch
from testkit.api_client import call, create_order
from testkit.factories import make_booking

pytestmark = pytest.mark.e2e


async def batch_calls(http, stack) -> float:
    """The calls order_service has answered on its batch route so far."""
    _, text, _ = await call(http, "GET", f"http://127.0.0.1:{stack.ports['order_service']}/metrics")
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "a6pay_http_requests_total"
               and sample.labels.get("route") == status_batch.PATH)


async def test_each_request_gets_its_own_answer_from_fewer_calls(stack, http, pool):
    bookings = [await make_booking(pool) for _ in range(6)]
    for booking in bookings[:4]:  # orders for four, none for the other two
        assert (await create_order(http, stack, booking))[0] == 200
    asked = [str(b["booking_id"]) for b in bookings] * 6 + [
        "abc", "0", "9" * 25, "10000000000000", "%31"]  # refused, too big, unknown, escaped
    direct = f"http://127.0.0.1:{stack.ports['order_service']}/api/razorpay/payment-status/"
    via_gateway = f"{stack.gateway}/api/razorpay/payment-status/"
    expected = [await call(http, "GET", direct + raw) for raw in asked]
    assert {status for status, _, _ in expected} == {200, 400, 404}

    calls_before = await batch_calls(http, stack)
    got = await asyncio.gather(*(call(http, "GET", via_gateway + raw) for raw in asked))
    calls = await batch_calls(http, stack) - calls_before

    assert [(s, b) for s, b, _ in got] == [(s, b) for s, b, _ in expected]
    assert all(h["Content-Type"].startswith("application/json") for _, _, h in got)
    assert 0 < calls < len(asked)  # they shared calls


async def test_the_batch_route_refuses_what_is_not_a_list_of_reads(stack, http):
    url = f"http://127.0.0.1:{stack.ports['order_service']}{status_batch.PATH}"
    for body in ({}, {"reads": []}, {"reads": "1"}, {"reads": [[1, None]]},
                 {"reads": [["1"]]}, {"reads": [["1", None]] * (status_batch.MAX_READS + 1)}):
        status, answer, _ = await call(http, "POST", url, json=body)
        assert (status, answer) == (400, {
            "message": "reads: a list of [booking_id, customer_id] pairs"}), body


async def test_every_request_of_a_call_gets_the_services_failure(stack, http, pool):
    """order_service away: each status request gets the 503 a single one would."""
    booking = await make_booking(pool)
    stack.stop("order_service")
    try:
        got = await asyncio.gather(*(
            call(http, "GET", f"{stack.gateway}/api/razorpay/payment-status/"
                              f"{booking['booking_id']}") for _ in range(20)))
        assert {(status, body["message"]) for status, body, _ in got} == {(503, UNAVAILABLE)}
    finally:
        stack.start("order_service")


async def test_the_gateway_does_not_expose_the_batch_route(stack, http):
    status, answer, _ = await call(http, "POST", f"{stack.gateway}{status_batch.PATH}",
                                   json={"reads": [["1", None]]})
    assert (status, answer) == (404, {"message": "Not found"})


async def test_an_id_that_swells_the_batch_fails_only_its_own_request(stack, http, pool):
    """Ids of thousands of escaped control characters (each `\\u0001` in the batch's JSON)
    are refused at the gateway, before they join a batch: a batch carrying many would pass
    order_service's body limit, and every honest read in it would share their 413."""
    booking = await make_booking(pool)
    assert (await create_order(http, stack, booking))[0] == 200
    via_gateway = f"{stack.gateway}/api/razorpay/payment-status/"
    swollen, honest = "%01" * 2700, str(booking["booking_id"])
    asked = ([swollen] * 10 + [honest]) * 40  # honest reads among them in every batch
    got = await asyncio.gather(*(call(http, "GET", via_gateway + raw) for raw in asked))
    assert {(status, body["message"]) for (status, body, _), raw in zip(got, asked, strict=True)
            if raw == swollen} == {(400, "Invalid booking_id: must be a positive integer")}
    assert {(status, body.get("status")) for (status, body, _), raw in zip(got, asked, strict=True)
            if raw == honest} == {(200, "pending")}
