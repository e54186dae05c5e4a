"""Garbage and attacks at every endpoint: always a 4xx with a JSON `message`, never a 5xx."""

import json

import pytest

from order_service.dispute_schemas import NOT_FOUND as DISPUTE_NOT_FOUND
from order_service.settlement_schemas import BAD_PAGE
from shared.schemas import UNSTORABLE_TEXT
from testkit.api_client import (
    ADMIN_TOKEN,
    call,
    cancel_booking,
    random_admin_client,
    refund,
    scan_pass,
)
from testkit.factories import make_booking

pytestmark = pytest.mark.e2e

JSON_ENDPOINTS = ["/api/razorpay/create-order", "/api/razorpay/verify-payment",
                  "/api/razorpay/webhook"]

DEEP = ("[" * 5000 + "]" * 5000).encode()
BODIES = {
    "malformed": b'{"booking_id": 1,',
    "not-an-object": b"[1, 2, 3]",
    "deep-nesting": DEEP,
    "deep-object": ('{"a":' * 3000 + "1" + "}" * 3000).encode(),
    "unicode": json.dumps({"booking_id": "१२३", "customer_id": "🚗", "amount": "₹1500",
                           "razorpay_order_id": "order_ü", "razorpay_payment_id": "pay_\u202e",
                           "razorpay_signature": "\u0000"}).encode(),
    "sql": json.dumps({"booking_id": "1; DROP TABLE payments; --", "customer_id": "1 OR 1=1",
                       "amount": "1500' --", "razorpay_order_id": "order_x' OR '1'='1",
                       "razorpay_payment_id": "pay_1;--", "razorpay_signature": "' OR 1=1"
                       }).encode(),
    "negative": json.dumps({"booking_id": -1, "customer_id": -9, "amount": -1500,
                            "razorpay_order_id": "order_A", "razorpay_payment_id": "pay_A",
                            "razorpay_signature": "a"}).encode(),
    "enormous": json.dumps({"booking_id": 10**400, "customer_id": 2**64, "amount": 1e308,
                            "razorpay_order_id": "order_" + "A" * 5000,
                            "razorpay_payment_id": "pay_A", "razorpay_signature": "a" * 5000
                            }).encode(),
    "nan": b'{"booking_id": NaN, "customer_id": Infinity, "amount": -Infinity}',
    "nulls": b'{"booking_id": null, "customer_id": null, "amount": null}',
    "bad-utf8": b'{"booking_id": "\xff\xfe"}',
}


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("name", sorted(BODIES))
async def test_bad_bodies_get_a_4xx_json_message(stack, http, path, name):
    headers = {"Content-Type": "application/json", "X-Razorpay-Signature": "0" * 64}
    status, body, _ = await call(http, "POST", stack.gateway + path, data=BODIES[name],
                                 headers=headers)
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]


@pytest.mark.parametrize("path", JSON_ENDPOINTS[:2])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
async def test_wrong_content_types_are_415(stack, http, path, content_type):
    status, body, _ = await call(http, "POST", stack.gateway + path,
                                 data=b'{"booking_id": 1, "customer_id": 1, "amount": 1}',
                                 headers={"Content-Type": content_type})
    assert status == 415 and body["message"] == "Content-Type must be application/json"


@pytest.mark.parametrize("path", JSON_ENDPOINTS + ["/api/razorpay/callback"])
async def test_huge_bodies_are_413(stack, http, path):
    status, body, _ = await call(http, "POST", stack.gateway + path, data=b"x" * 200_000,
                                 headers={"Content-Type": "application/json"})
    assert status == 413 and body["message"] == "Request body too large"


@pytest.mark.parametrize("booking_id", ["-1", "0", "1.5", "abc", "1%20OR%201=1",
                                        "99999999999999999999999", "%F0%9F%9A%97", "1e3"])
async def test_payment_status_rejects_bad_ids(stack, http, booking_id):
    status, body, _ = await call(http, "GET",
                                 f"{stack.gateway}/api/razorpay/payment-status/{booking_id}")
    assert status in (400, 404) and body["message"]


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize("query", ["skip=100000000000000000000", "skip=-1", "count=0",
                                   "count=100000000000000000000", "skip=x"])
async def test_settlement_paging_out_of_range_is_400(stack, http, query):
    status, body, _ = await call(http, "GET", f"{stack.gateway}/api/razorpay/settlements?{query}",
                                 headers=ADMIN)
    assert (status, body) == (400, {"message": BAD_PAGE})


@pytest.mark.parametrize("text", ["a\u0000b", "x \ud83d"])
async def test_free_text_the_database_cannot_hold_is_400(stack, http, pool, text):
    booking = await make_booking(pool)
    key = f"bad-text-{booking['booking_id']}"
    answers = [
        await refund(http, stack, {"booking_id": booking["booking_id"], "reason": text},
                     key=key),
        await cancel_booking(http, stack, booking["booking_id"], key=key, body={"reason": text}),
    ]
    for status, body, _ in answers:
        assert (status, body) == (400, {"message": f"Invalid field: reason: Value error, "
                                                   f"{UNSTORABLE_TEXT}"})


@pytest.mark.parametrize("path", ["/api/razorpay/disputes/disp_a%00b/contest",
                                  "/api/razorpay/disputes/disp_a%00b/accept"])
async def test_a_dispute_id_with_nul_is_not_found(stack, http, path):
    status, body, _ = await call(http, "POST", stack.gateway + path, client=random_admin_client(),
                                 headers={**ADMIN, "Idempotency-Key": f"nul-{path[-6:]}"})
    assert (status, body) == (404, {"message": DISPUTE_NOT_FOUND})


async def test_a_pass_token_with_nul_is_not_a_500(stack, http):
    status, body, _ = await scan_pass(http, stack, "a\u0000b")
    assert 400 <= status < 500 and body["message"], (status, body)
