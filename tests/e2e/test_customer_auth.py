"""Optional customer authentication: with AUTH_JWT_SECRET set, a customer can only create,
verify and read their own bookings."""

import time

import jwt
import pytest

from gateway.auth import INVALID_TOKEN
from testkit.api_client import call, pay, random_client, raw_request
from testkit.factories import make_booking
from testkit.stack import running_stack

pytestmark = pytest.mark.e2e
SECRET = "a6-test-customer-auth-secret-0123456789"


@pytest.fixture(scope="module")
def auth_stack(database_url, amqp_url):
    with running_stack(database_url, amqp_url, {"AUTH_JWT_SECRET": SECRET}) as stack:
        yield stack


def bearer(customer_id: int, secret: str = SECRET, ttl: int = 300) -> dict:
    token = jwt.encode({"sub": str(customer_id), "exp": int(time.time()) + ttl}, secret,
                       algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def order_body(booking):
    return {"booking_id": booking["booking_id"], "customer_id": booking["customer_id"],
            "amount": booking["amount"]}


async def test_a_customer_reaches_only_their_own_bookings(auth_stack, http, pool):
    mine, theirs = await make_booking(pool), await make_booking(pool)
    create = f"{auth_stack.gateway}/api/razorpay/create-order"
    me = bearer(mine["customer_id"])

    assert (await call(http, "POST", create, json=order_body(mine)))[0] == 401
    expired = bearer(mine["customer_id"], ttl=-10)
    assert (await call(http, "POST", create, json=order_body(mine), headers=expired))[0] == 401
    forged = bearer(mine["customer_id"], secret="not-the-secret-not-the-secret-xx")
    assert (await call(http, "POST", create, json=order_body(mine), headers=forged))[0] == 401

    status, body, _ = await call(http, "POST", create, json=order_body(mine), headers=me)
    assert status == 200, body
    # their booking, their customer id in the body: refused at the gateway
    assert (await call(http, "POST", create, json=order_body(theirs), headers=me))[0] == 403
    # their booking with my customer id: not mine, so not found
    sneaky = {**order_body(theirs), "customer_id": mine["customer_id"]}
    assert (await call(http, "POST", create, json=sneaky, headers=me))[0] == 404

    theirs_order = await call(http, "POST", create, json=order_body(theirs),
                              headers=bearer(theirs["customer_id"]))
    assert theirs_order[0] == 200
    status_url = f"{auth_stack.gateway}/api/razorpay/payment-status"
    assert (await call(http, "GET", f"{status_url}/{mine['booking_id']}", headers=me))[0] == 200
    assert (await call(http, "GET", f"{status_url}/{theirs['booking_id']}",
                       headers=me))[0] == 404
    # a client cannot claim an identity by sending the gateway's internal header
    spoof = {**me, "X-A6-Customer-Id": str(theirs["customer_id"])}
    assert (await call(http, "GET", f"{status_url}/{theirs['booking_id']}",
                       headers=spoof))[0] == 404

    checkout = await pay(http, auth_stack, theirs_order[1]["order_id"], "captured",
                         enabled=False)
    verify_url = f"{auth_stack.gateway}/api/razorpay/verify-payment"
    fields = {k: checkout[k] for k in ("razorpay_payment_id", "razorpay_order_id",
                                       "razorpay_signature")}
    as_me = {**fields, "booking_id": theirs["booking_id"], "customer_id": mine["customer_id"]}
    assert (await call(http, "POST", verify_url, json=as_me, headers=me))[0] == 404
    as_them = {**fields, "booking_id": theirs["booking_id"],
               "customer_id": theirs["customer_id"]}
    assert (await call(http, "POST", verify_url, json=as_them, headers=me))[0] == 403
    ok = await call(http, "POST", verify_url, json=as_them, headers=bearer(theirs["customer_id"]))
    assert ok[0] == 200


async def test_a_token_that_is_not_utf8_is_refused_as_invalid(auth_stack, pool):
    booking = await make_booking(pool)
    body = (b'{"booking_id": %d, "customer_id": %d, "amount": %d}'
            % (booking["booking_id"], booking["customer_id"], booking["amount"]))
    for token in (b"\xff\xfe", b"\xc3\xa9\xe2\x98\x83"):
        head = (b"POST /api/razorpay/create-order HTTP/1.1\r\nContent-Type: application/json"
                b"\r\nX-Forwarded-For: " + random_client().encode()
                + b"\r\nAuthorization: Bearer " + token)
        status, answer = await raw_request(auth_stack.gateway, head, body)
        assert (status, answer) == (401, {"message": INVALID_TOKEN}), token
