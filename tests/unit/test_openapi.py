"""gateway/openapi.py is valid OpenAPI and stays true to the code it describes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import auth, errors
from gateway.app import create_app
from gateway.openapi import spec
from gateway.routes import ROUTES
from order_service import admin, cancellations, idempotency, pass_scans, staff
from order_service import handlers as order_handlers
from order_service.schemas import (
    CREATE_ORDER_FIELDS,
    MISSING_CREATE_ORDER,
    CreateOrderBody,
    CreateOrderResponse,
    PaymentStatusResponse,
)
from shared import http
from shared.settings import load_settings
from verification_service import handlers as verify_handlers
from verification_service.schemas import (
    CALLBACK_FIELDS,
    MISSING_VERIFY,
    CallbackForm,
    VerifyBody,
    VerifyPaymentResponse,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC = spec()
SCHEMAS = SPEC["components"]["schemas"]
SOURCES = "".join(
    path.read_text()
    for package in ("gateway", "shared", "order_service", "verification_service",
                    "webhook_service")
    for path in (ROOT / package).glob("*.py")
    if path.name != "openapi.py"
)


def operations():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def operation(method: str, path: str) -> dict:
    return SPEC["paths"][path][method.lower()]


def example_messages(response: dict) -> list[str]:
    content = response.get("content", {}).get("application/json", {})
    return [e["value"]["message"] for e in content.get("examples", {}).values()]


def resolve(ref: str) -> dict:
    node = SPEC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_spec_is_valid_openapi():
    try:
        from openapi_spec_validator import validate
    except ImportError:
        validate = None
    if validate is not None:
        validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")
    assert {"title", "version"} <= set(SPEC["info"])
    for ref in refs(SPEC):
        assert resolve(ref), ref
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))
    for method, path, op in operations():
        assert op["responses"], f"{method} {path}"
        for status, response in op["responses"].items():
            assert re.fullmatch(r"[1-5][0-9]{2}", status), f"{method} {path}: {status}"
            for media in response.get("content", {}).values():
                assert "schema" in media
        for name in re.findall(r"{(\w+)}", path):
            params = [p for p in op.get("parameters", []) if p["in"] == "path"]
            assert [p["name"] for p in params] == [name] and params[0]["required"]


def test_spec_is_json():
    assert json.loads(json.dumps(SPEC)) == SPEC


def test_every_gateway_route_is_documented_and_nothing_else():
    app = create_app(load_settings())
    served = {(r.method, r.resource.canonical) for r in app.router.routes()}
    documented = {(method, path) for method, path, _ in operations()}
    assert served == documented


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_route_table_properties_are_documented(route):
    op = operation(route.method, route.path)
    responses = op["responses"]
    assert ("429" in responses) == (route.limit_group is not None or route.admin)
    assert ("401" in responses) == (route.customer_auth or route.admin or route.staff)
    assert ("403" in responses) == (route.body_names_customer or route.admin or route.staff)
    assert (op.get("security") == [{}, {"bearerAuth": []}]) == route.customer_auth
    assert (op.get("security") == [{"adminBearer": []}]) == route.admin
    assert (op.get("security") == [{"staffBearer": []}]) == route.staff
    if route.method == "POST":
        assert {"408", "413"} <= set(responses)
    assert {"503", "504"} <= set(responses)  # the gateway's own, whatever the service
    assert "500" not in responses  # a 500 is a bug, never part of the contract


def test_error_bodies_are_message_objects():
    assert SCHEMAS["Error"] == {"type": "object", "required": ["message"],
                                "properties": {"message": {"type": "string"}}}
    for method, path, op in operations():
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
                assert example_messages(response), (method, path, status)


def model_fields(model) -> list[str]:
    return list(model.model_fields)


def test_request_schemas_match_the_service_models():
    create = SCHEMAS["CreateOrderRequest"]
    assert create["required"] == model_fields(CreateOrderBody) == list(CREATE_ORDER_FIELDS)
    assert list(create["properties"]) == model_fields(CreateOrderBody)
    verify = SCHEMAS["VerifyPaymentRequest"]
    assert verify["required"] == model_fields(VerifyBody)
    assert list(verify["properties"]) == model_fields(VerifyBody)
    assert list(SCHEMAS["CallbackForm"]["properties"]) == model_fields(CallbackForm)
    assert model_fields(CallbackForm) == list(CALLBACK_FIELDS)


def untitled(node):
    if isinstance(node, dict):
        return {k: untitled(v) for k, v in node.items()
                if not (k == "title" and isinstance(v, str))}
    return [untitled(v) for v in node] if isinstance(node, list) else node


@pytest.mark.parametrize(("model", "schema_name"), [
    (VerifyBody, "VerifyPaymentRequest"), (CreateOrderBody, "CreateOrderRequest"),
    (CallbackForm, "CallbackForm"), (CreateOrderResponse, "CreateOrderResponse"),
    (PaymentStatusResponse, "PaymentStatusResponse"),
    (VerifyPaymentResponse, "VerifyPaymentResponse"),
])
def test_schemas_are_the_models_own(model, schema_name):
    """Generated, not written: each schema is what pydantic says of the model the service
    validates with or answers with (titles aside)."""
    theirs = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in theirs.pop("$defs", {}).items():
        assert SCHEMAS[name] == untitled(definition), name
    assert SCHEMAS[schema_name] == untitled(theirs)


def test_a_route_without_a_doc_fails_loudly():
    from gateway.openapi import DOCS

    assert {route.name for route in ROUTES} <= set(DOCS), "document every gateway route"


def test_path_parameter_is_an_id():
    (param,) = operation("GET", "/api/razorpay/payment-status/{booking_id}")["parameters"]
    assert param["schema"] == resolve("#/components/schemas/Id")


# (method, path, status) -> the messages the code raises there, imported from the code.
EXPECTED_MESSAGES = {
    ("POST", "/api/razorpay/create-order", "400"): [
        MISSING_CREATE_ORDER, order_handlers.AMOUNT_MISMATCH],
    ("POST", "/api/razorpay/create-order", "404"): [order_handlers.BOOKING_NOT_FOUND],
    ("POST", "/api/razorpay/create-order", "409"): [order_handlers.ALREADY_PAID],
    ("POST", "/api/razorpay/verify-payment", "400"): [
        verify_handlers.FRAUD, verify_handlers.MISMATCH, MISSING_VERIFY],
    ("POST", "/api/razorpay/verify-payment", "404"): [verify_handlers.BOOKING_NOT_FOUND],
    ("POST", "/api/razorpay/verify-payment", "409"): [verify_handlers.ALREADY_PAID],
    ("GET", "/api/razorpay/payment-status/{booking_id}", "404"): [
        order_handlers.PAYMENT_NOT_FOUND],
    ("POST", "/api/razorpay/refunds", "401"): [admin.ADMIN_REQUIRED],
    ("POST", "/api/razorpay/refunds", "403"): [admin.ADMIN_DISABLED],
    ("POST", "/api/razorpay/refunds", "400"): [idempotency.MISSING_KEY],
    ("POST", "/api/razorpay/refunds", "409"): [
        cancellations.NOT_PAID, cancellations.NOTHING_LEFT],
    ("POST", "/api/razorpay/refunds", "422"): [idempotency.KEY_REUSED],
    ("POST", "/api/razorpay/refunds", "502"): [cancellations.REFUND_REFUSED],
    ("POST", "/api/razorpay/bookings/{booking_id}/cancel", "404"): [
        cancellations.BOOKING_NOT_FOUND],
    ("POST", "/api/razorpay/bookings/{booking_id}/cancel", "409"): [idempotency.IN_PROGRESS],
    ("POST", "/api/passes/scan", "400"): [pass_scans.NOT_OURS, staff.MISSING_TOKEN],
    ("POST", "/api/passes/scan", "401"): [staff.STAFF_REQUIRED],
    ("POST", "/api/passes/scan", "403"): [staff.STAFF_DISABLED],
    ("POST", "/api/passes/scan", "410"): [pass_scans.GONE["revoked", "collection"]],
}
GATEWAY_MESSAGES = {
    "401": [auth.AUTH_REQUIRED, auth.INVALID_TOKEN],
    "403": [errors.FORBIDDEN],
    "408": [errors.BODY_TIMEOUT],
    "413": [http.BODY_TOO_LARGE],
    "503": [errors.UNAVAILABLE],
    "504": [errors.UPSTREAM_TIMEOUT],
}


@pytest.mark.parametrize(("key", "messages"), EXPECTED_MESSAGES.items(),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_service_messages_are_the_handlers_constants(key, messages):
    method, path, status = key
    documented = example_messages(operation(method, path)["responses"][status])
    assert set(messages) <= set(documented)


def test_gateway_messages_are_its_constants():
    proxied = {(route.method, route.path) for route in ROUTES}
    for method, path, op in operations():
        if (method, path) not in proxied:
            continue  # the gateway's own endpoints (/readyz) answer for themselves
        for status, messages in GATEWAY_MESSAGES.items():
            security = str(op.get("security"))
            if status in ("401", "403") and ("adminBearer" in security
                                             or "staffBearer" in security):
                continue  # the admin and staff APIs' own (order_service checks the token)
            if status in op["responses"]:
                assert set(messages) <= set(example_messages(op["responses"][status])), (
                    method, path, status)


def test_the_seed_success_messages():
    verify = operation("POST", "/api/razorpay/verify-payment")["responses"]["200"]
    assert verify["content"]["application/json"]["example"]["message"] == verify_handlers.VERIFIED


def rate_limit_message() -> re.Pattern:
    body = json.loads(errors.too_many_requests(7).body)["message"]
    return re.compile(re.escape(body).replace("7", r"\d+"))


def test_every_example_message_exists_in_the_code():
    """No invented messages: each is a string the code produces."""
    dynamic = [rate_limit_message(), re.compile(r"Payment not captured by Razorpay\. Status: \w+"),
               re.compile(r"Not ready: \w+(, \w+)*")]
    assert 'f"Payment not captured by Razorpay. Status: {' in SOURCES
    assert '"Not ready: " + ", ".join(failed)' in SOURCES
    constants = {MISSING_CREATE_ORDER, MISSING_VERIFY}
    for method, path, op in operations():
        for status, response in op["responses"].items():
            for message in example_messages(response):
                if message in constants or any(p.fullmatch(message) for p in dynamic):
                    continue
                assert json.dumps(message) in SOURCES or f'"{message}"' in SOURCES, (
                    f"{method} {path} {status}: {message!r} is not in the code")


def test_examples_match_their_schemas():
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # comes with schemathesis

    def check(sample, schema: dict) -> None:
        root = {**schema, "components": SPEC["components"]}
        jsonschema_rs.Draft202012Validator(root).validate(sample)

    for _, _, op in operations():
        for response in op["responses"].values():
            media = response.get("content", {}).get("application/json")
            if not media:
                continue
            samples = [media["example"]] if "example" in media else []
            samples += [e["value"] for e in media.get("examples", {}).values()]
            for sample in samples:
                check(sample, media["schema"])
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            check(body["example"], body["schema"])


def test_request_examples_are_accepted_by_the_models():
    create = operation("POST", "/api/razorpay/create-order")["requestBody"]
    CreateOrderBody.model_validate(create["content"]["application/json"]["example"])
    verify = operation("POST", "/api/razorpay/verify-payment")["requestBody"]
    VerifyBody.model_validate(verify["content"]["application/json"]["example"])


async def test_served_without_auth_or_rate_limit():
    settings = load_settings(
        auth_jwt_secret="x" * 32, rate_limit_create_order=1, rate_limit_verify_payment=1,
        rate_limit_payment_status=1,
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        for _ in range(5):
            response = await client.get("/openapi.json")
            assert response.status == 200
            assert response.content_type == "application/json"
            assert await response.json() == SPEC
            assert response.headers["X-Request-Id"]
