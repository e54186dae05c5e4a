"""Schemathesis against the live gateway, with the spec the gateway itself serves.

Every operation gets a bounded, derandomized batch of generated requests (valid and
invalid); each answer must be documented (status, content type, headers, body schema)
and none may be a 5xx: with the sandbox and every service up, a 5xx is a bug. A second
test walks the happy path with real ids, so the 200/303 bodies are checked too.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the importorskip)
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openapi import spec  # noqa: E402
from testkit.api_client import call, pay  # noqa: E402
from testkit.factories import make_booking  # noqa: E402

pytestmark = pytest.mark.e2e
# Per operation and mode; 30 keeps the file well under 2 minutes and each operation under
# its rate limit (100/min), so the answers are real ones, not 429s. Raise it to explore.
MAX_EXAMPLES = int(os.environ.get("A6PAY_FUZZ_EXAMPLES", "30"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Operations whose inputs the spec constrains: invalid data must get a 4xx there. The
# callback answers every input with a 303 to the failure page (Checkout's contract), and
# /healthz and /openapi.json take no input, so they get positive cases only.
NEGATIVE_CHECKED = {"POST /api/razorpay/create-order", "POST /api/razorpay/verify-payment",
                    "POST /api/razorpay/webhook", "GET /api/razorpay/payment-status/{booking_id}"}


@pytest.fixture(scope="module")
def gateway_schema(stack):
    """The spec as the live gateway serves it, not as this process would build it."""
    return schemathesis.openapi.from_url(f"{stack.gateway}/openapi.json")


def _cases() -> list:
    """(operation, mode) pairs; negative only where the spec constrains some input."""
    cases = []
    for path, item in spec()["paths"].items():
        for method in item:
            label = f"{method.upper()} {path}"
            modes = [GenerationMode.POSITIVE]
            if label in NEGATIVE_CHECKED:
                modes.append(GenerationMode.NEGATIVE)
            cases += [pytest.param(method.upper(), path, mode, id=f"{label} {mode.value}")
                      for mode in modes]
    return cases


# `schemathesis.pytest.from_fixture(...).parametrize()` breaks on pytest 9.2 (it reads
# `Function._nodeid`), so each operation is a plain parametrized test driving the
# operation's Hypothesis strategy itself: the same generation and checks.
@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_gateway_conforms_to_its_openapi(gateway_schema, stack, method, path, mode):
    operation = gateway_schema[path][method]
    checks = CHECKS + ([negative_data_rejection] if operation.label in NEGATIVE_CHECKED else [])
    assert operation.label == f"{method} {path}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(base_url=stack.gateway, checks=checks, timeout=20)

    fuzz()


async def test_happy_path_answers_conform(stack, http, pool, gateway_schema):
    """Real ids through every public operation; each real answer validated by the spec."""
    booking = await make_booking(pool, 150_000)
    ids = {"booking_id": booking["booking_id"], "customer_id": booking["customer_id"]}

    def validated(method: str, path: str, status: int, **case_kwargs):
        case = gateway_schema[path][method].Case(**case_kwargs)
        response = case.call(base_url=stack.gateway, allow_redirects=False, timeout=20)
        assert response.status_code == status, response.text
        case.validate_response(response, checks=CHECKS)
        return response

    order = validated("POST", "/api/razorpay/create-order", 200,
                      body={**ids, "amount": booking["amount"]}).json()
    validated("GET", "/api/razorpay/payment-status/{booking_id}", 200,
              path_parameters={"booking_id": booking["booking_id"]})
    checkout = await pay(http, stack, order["order_id"], "captured", enabled=False)
    fields = {k: checkout[k] for k in
              ("razorpay_payment_id", "razorpay_order_id", "razorpay_signature")}
    validated("POST", "/api/razorpay/verify-payment", 200, body={**fields, **ids})
    callback = validated("POST", "/api/razorpay/callback", 303, body=fields,
                         media_type="application/x-www-form-urlencoded")
    assert "booking_id=" in callback.headers["location"][0]
    status = validated("GET", "/api/razorpay/payment-status/{booking_id}", 200,
                       path_parameters={"booking_id": booking["booking_id"]}).json()
    assert status["paid"] is True
    validated("POST", "/api/razorpay/create-order", 409, body={**ids, "amount": booking["amount"]})
    validated("GET", "/healthz", 200)
    assert (await call(http, "GET", f"{stack.gateway}/openapi.json"))[0] == 200


# Found by probing beyond the spec (the generated cases above never send these headers).
async def test_undecodable_content_encoding_is_a_4xx(stack, http):
    status, body, _ = await call(
        http, "POST", f"{stack.gateway}/api/razorpay/create-order", data=b"not gzip",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert 400 <= status < 500 and "message" in body, (status, body)


async def test_callback_with_an_unknown_charset_redirects(stack, http):
    status, body, _ = await call(
        http, "POST", f"{stack.gateway}/api/razorpay/callback",
        data=b"razorpay_order_id=order_1&razorpay_payment_id=pay_1&razorpay_signature=x",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=bogus"})
    assert status == 303, (status, body)
