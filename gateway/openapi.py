"""The public API as OpenAPI 3.1, served at `GET /openapi.json`, generated from the pydantic
models the services validate with (requests) and answer with (responses).

Each gateway route (gateway/routes.py: ROUTES) has one `Doc` here: its summary, its models,
the seed's examples and the messages the service answers with. The answers the gateway
itself gives (429, 401, 403, 408, 413, 503, 504) follow from the route's properties, so
documenting a new route is one `Doc(...)` entry in DOCS. tests/unit/test_openapi.py checks
every route has one, every message against the constant its handler raises, and every
example against its schema; the e2e fuzz checks the live answers against it all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from gateway import staff_page
from gateway.errors import BODY_TIMEOUT, FORBIDDEN, UNAVAILABLE, UPSTREAM_TIMEOUT
from gateway.routes import ROUTES, Route
from order_service.dispute_schemas import (
    CANNOT_ACCEPT,
    CANNOT_CONTEST,
    DISPUTED,
    NOT_OURS_YET,
    UNKNOWN_STATUS,
    DisputeActionResponse,
    DisputesResponse,
)
from order_service.dispute_schemas import NOT_FOUND as DISPUTE_NOT_FOUND
from order_service.schemas import (
    REFUND_REFUSED,
    CancelBody,
    CancelResponse,
    CreateOrderBody,
    CreateOrderResponse,
    PaymentStatusResponse,
    RefundBody,
    RefundResponse,
    ScanBody,
    ScanResponse,
)
from order_service.settlement_schemas import BAD_DATE, BAD_PAGE, MAX_SKIP, SettlementsResponse
from shared.http import BODY_TOO_LARGE
from shared.schemas import ErrorBody, PositiveId, Readiness, Status
from verification_service.schemas import CallbackForm, VerifyBody, VerifyPaymentResponse
from webhook_service.schemas import WebhookEvent

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
PAY_ID = "pay_1DP5MMOQ9HrQ9jK8"
ORDER_ID = "order_1DP5MMOQ9HrQ9jK8"
SIGNATURE = "9ef4dffbfd84f1318f6739a3ce19f9d85851857ae648f114332d8401e0949a3d"
TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
_REQUEST_ID = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}


@dataclass(frozen=True)
class Doc:
    """What the route table cannot say about a route: what it takes and answers."""

    operation_id: str
    summary: str
    ok: tuple[int, type[BaseModel] | None, dict | None]  # status, body model, example
    errors: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    body: type[BaseModel] | None = None  # JSON request body
    body_example: dict | None = None
    form: type[BaseModel] | None = None  # form body (the checkout callback)
    description: str = ""
    headers: tuple[dict, ...] = ()  # header parameters
    ok_headers: dict | None = None  # headers of the success answer (a redirect's Location)
    body_required: bool = True
    security: tuple[dict, ...] | None = None  # None: from the route (customer auth or none)


def errors(description: str, *messages: str) -> tuple[str, tuple[str, ...]]:
    return description, messages


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": "A retry with the same key gets the first answer (and never a second"
                   " refund); the same key with another body gets 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_REFUND_EXAMPLE = {"id": 17, "booking_id": 123, "amount": 500.0, "status": "pending",
                   "final": False, "cause": "admin", "reason": "early return",
                   "failure_reason": None, "created_at": "2026-01-05T10:00:00+00:00"}
# What the admin API (order_service checks ADMIN_API_TOKEN itself) answers on every route.
_ADMIN_ERRORS = {
    400: errors("Invalid fields or a missing Idempotency-Key header.",
                "Idempotency-Key header is required",
                "Invalid booking_id: must be a positive integer",
                "Request body is not valid JSON"),
    401: errors("The admin bearer token is missing or wrong.", "Admin authentication required"),
    403: errors("ADMIN_API_TOKEN is not set on the server, or the caller is outside"
                " ADMIN_ALLOWED_NETWORKS.",
                "Admin API is disabled: set ADMIN_API_TOKEN to enable it", FORBIDDEN),
    404: errors("No such booking.", "Booking not found"),
    422: errors("The Idempotency-Key was used before with another body.",
                "Idempotency-Key was already used with a different request"),
}
_ADMIN_AUTH = {status: _ADMIN_ERRORS[status] for status in (401, 403)}
_ADMIN_SECURITY = ({"adminBearer": []},)
_ADMIN = {"security": _ADMIN_SECURITY, "headers": (_IDEMPOTENCY_KEY,)}
_DISPUTE_EXAMPLE = {
    "dispute_id": "disp_AHfqOvkldwsbqt", "booking_id": 123, "amount": 1500.0,
    "amount_deducted": 1500.0, "status": "open", "phase": "chargeback",
    "reason_code": "chargeback_request", "respond_by": "2026-01-08T10:00:00+00:00",
    "evidence_submitted_at": None, "created_at": "2026-01-05T10:00:00+00:00"}
_DISPUTE_ERRORS = {
    400: errors("A missing Idempotency-Key, or Razorpay refused the request (its message).",
                "Idempotency-Key header is required"),
    404: errors("No such dispute.", DISPUTE_NOT_FOUND),
    422: _ADMIN_ERRORS[422], **_ADMIN_AUTH,
}


def _query(name: str, description: str, kind: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": kind}}


DOCS: dict[str, Doc] = {
    "create_order": Doc(
        "createOrder", "Create (or return the open) Razorpay order for a booking",
        body=CreateOrderBody,
        body_example={"booking_id": 123, "customer_id": 45, "amount": 1500.00},
        ok=(200, CreateOrderResponse, {
            "message": "Order created successfully", "order_id": ORDER_ID, "amount": 1500.00,
            "currency": "INR", "booking_id": 123, "customer_email": "john@example.com",
            "customer_name": "John Doe"}),
        errors={
            400: errors("Missing or invalid fields, or an amount that is not the booking's.",
                        "Missing required fields: booking_id, customer_id, amount",
                        "Amount does not match the booking amount.",
                        "Request body is not valid JSON"),
            404: errors("No such booking for this customer.",
                        "Booking not found or does not belong to this customer."),
            409: errors("The booking is already paid.", "Payment already made for this booking."),
            502: errors("Razorpay refused the order or answered with another order.",
                        "Payment provider rejected the order request.",
                        "Payment provider returned an unexpected order."),
        }),
    "payment_status": Doc(
        "paymentStatus", "The payment status of a booking",
        ok=(200, PaymentStatusResponse,
            {"status": "paid", "paid": True, "razorpay_payment_id": PAY_ID}),
        errors={
            400: errors("booking_id is not a positive integer.",
                        "Invalid booking_id: must be a positive integer"),
            404: errors("No order was created for this booking (or not this customer's).",
                        "Payment not found"),
        }),
    "verify_payment": Doc(
        "verifyPayment",
        "Verify Checkout's signature and Razorpay's capture; returns the QR passes",
        body=VerifyBody,
        body_example={"razorpay_payment_id": PAY_ID, "razorpay_order_id": ORDER_ID,
                      "razorpay_signature": SIGNATURE, "booking_id": 123, "customer_id": 45},
        ok=(200, VerifyPaymentResponse, {
            "message": "✅ Payment verified and booking confirmed!",
            "razorpay_payment_id": PAY_ID, "collection_qr": TINY_PNG, "return_qr": TINY_PNG,
            "booking_details": {
                "booking_id": 123, "customer_name": "John Doe", "car": "Maruti Swift",
                "amount": 1500.00, "start_date": "2025-12-28", "end_date": "2025-12-30"}}),
        errors={
            400: errors("Bad signature, missing/invalid fields, or a payment Razorpay has not"
                        " captured for this order and amount.",
                        "❌ Payment signature verification failed. Payment may be fraudulent.",
                        "Payment not captured by Razorpay. Status: authorized",
                        "Payment does not match this order.",
                        "Missing required fields: razorpay_payment_id, razorpay_order_id,"
                        " razorpay_signature, booking_id, customer_id"),
            404: errors("The order is not this booking's and customer's.", "Booking not found"),
            409: errors("The booking was paid by another payment.",
                        "Payment already completed for this booking"),
        }),
    "callback": Doc(
        "checkoutCallback",
        "Razorpay Checkout's callback_url: verifies, then redirects the browser",
        description="Verified like verify-payment (shares its rate limit). Any outcome is a 303"
                    " to CHECKOUT_SUCCESS_URL (`?booking_id=`) or CHECKOUT_FAILURE_URL"
                    " (`?reason=`); failed payments post `error[...]` fields instead.",
        form=CallbackForm,
        ok=(303, None, None),
        ok_headers={"Location": {"required": True, "schema": {"type": "string"}}}),
    "webhook": Doc(
        "razorpayWebhook", "Razorpay's signed webhook (payment.* and order.paid events)",
        description="The signature is HMAC-SHA256 of the raw body with the webhook secret,"
                    " checked before the body is parsed. Duplicates and unknown events are"
                    " acknowledged. Never rate limited.",
        headers=(
            {"name": "X-Razorpay-Signature", "in": "header", "required": True,
             "schema": {"type": "string", "minLength": 1}},
            {"name": "X-Razorpay-Event-Id", "in": "header", "required": False,
             "description": "Deduplication key; a stable key is derived when absent.",
             "schema": {"type": "string"}},
        ),
        body=WebhookEvent,
        body_example={"event": "payment.captured", "payload": {"payment": {"entity": {
            "id": PAY_ID, "order_id": ORDER_ID, "amount": 150000, "currency": "INR",
            "method": "card", "status": "captured"}}}},
        ok=(200, Status, {"status": "ok"}),
        errors={
            400: errors("Missing or invalid signature, or a payload that is not an event.",
                        "Missing webhook signature", "Invalid webhook signature",
                        "Malformed webhook payload"),
            503: errors("Not recorded (database down); Razorpay retries.",
                        "Service temporarily unavailable. Please retry.", UNAVAILABLE),
        }),
    "cancel_booking": Doc(
        "cancelBooking", "Admin: cancel a booking; a paid one is refunded (minus the fee)",
        description="Unpaid: no new order can be made, and a payment captured later anyway is"
                    " refunded in full automatically. Paid: everything not yet refunded minus"
                    " `cancellation_fee` is refunded and both passes are revoked. Cancelling"
                    " again returns the same answer.",
        body=CancelBody, body_required=False,
        body_example={"reason": "customer cancelled", "cancellation_fee": 200.0},
        ok=(200, CancelResponse, {
            "message": "Booking cancelled", "booking_id": 123, "status": "cancelled",
            "paid": True, "cancellation_fee": 200.0, "reason": "customer cancelled",
            "cancelled_at": "2026-01-05T10:00:00+00:00",
            "refund": {**_REFUND_EXAMPLE, "amount": 1300.0, "cause": "cancellation"}}),
        errors={**_ADMIN_ERRORS, 409: errors(
            "The payment's dispute is open, or a request with this key is still being"
            " answered.", DISPUTED,
            "A request with this Idempotency-Key is still in progress; retry shortly")},
        **_ADMIN),
    "refund": Doc(
        "refundBooking", "Admin: refund part or all of what remains of a booking's payment",
        body=RefundBody,
        body_example={"booking_id": 123, "amount": 500.0, "reason": "early return"},
        ok=(200, RefundResponse, {"message": "Refund initiated", "refund": _REFUND_EXAMPLE,
                                  "remaining": 1000.0}),
        errors={**_ADMIN_ERRORS, 409: errors(
            "Unpaid, nothing left to refund, or the same key in progress.",
            "Booking has no captured payment to refund",
            "Nothing left to refund for this booking", DISPUTED),
            502: errors("Razorpay refused the refund at once: no money moved (the refund is"
                        " failed, and listed by `a6pay refunds-needed`).",
                        REFUND_REFUSED)},
        **_ADMIN),
    "list_disputes": Doc(
        "listDisputes", "Admin: disputes (chargebacks), open ones first by respond_by",
        description="Optional `?status=` (open, action_required, under_review, won, lost,"
                    " closed).",
        ok=(200, DisputesResponse, {"disputes": [_DISPUTE_EXAMPLE]}),
        errors={400: errors("An unknown status.", UNKNOWN_STATUS), **_ADMIN_AUTH},
        security=_ADMIN_SECURITY),
    "contest_dispute": Doc(
        "contestDispute", "Admin: contest a dispute with evidence from our records",
        description="Builds a PDF from the booking, payment, passes, confirmation mail, refunds"
                    " and cancellation policy, uploads it (POST /v1/documents) and submits it"
                    " (PATCH /v1/disputes/{id}/contest). The same Idempotency-Key gives the"
                    " first answer and calls Razorpay once; a retry after an answer lost to a"
                    " timeout gets the answer the call that landed would have had.",
        ok=(200, DisputeActionResponse, {"message": "Dispute contested", "dispute": {
            **_DISPUTE_EXAMPLE, "status": "under_review",
            "evidence_submitted_at": "2026-01-06T09:00:00+00:00"}}),
        errors={**_DISPUTE_ERRORS, 409: errors(
            "Not waiting for evidence any more, or its capture is not recorded yet.",
            CANNOT_CONTEST, NOT_OURS_YET)},
        **_ADMIN),
    "accept_dispute": Doc(
        "acceptDispute", "Admin: accept a dispute (Razorpay keeps the disputed amount)",
        ok=(200, DisputeActionResponse, {"message": "Dispute accepted", "dispute": {
            **_DISPUTE_EXAMPLE, "status": "lost"}}),
        errors={**_DISPUTE_ERRORS, 409: errors(
            "Not waiting for an answer any more.",
            CANNOT_ACCEPT)},
        **_ADMIN),
    "pass_scan": Doc(
        "scanPass", "Staff: record a pass used at the counter (collection or return)",
        description="The pass's QR text. The first use of a valid pass moves the booking"
                    " confirmed -> collected (collection pass) or collected -> returned"
                    " (return pass) and is recorded once. Refusals carry the booking's"
                    " `booking_id`, `kind`, `car`, `customer_name`, `start_date`, `end_date`"
                    " when the pass is ours; a pass already used adds `used_at`, one outside"
                    " the rental window (PASS_GRACE_HOURS either side) `window_opens` and"
                    " `window_closes`.",
        body=ScanBody, body_example={"token": "A6P2.1f2e3d4c.123.collection."
                                               "0123456789abcdef0123456789abcdef"},
        ok=(200, ScanResponse, {
            "message": "Collection recorded: hand over the car", "booking_id": 123,
            "kind": "collection", "result": "collected",
            "scanned_at": "2026-01-05T10:02:00+00:00", "car": "Maruti Swift",
            "customer_name": "John Doe", "start_date": "2026-01-05",
            "end_date": "2026-01-07"}),
        errors={
            400: errors("Not a pass we issued, or a body without a `token` string.",
                        "Not an A6 Cars pass: the code was not issued by us",
                        "Missing required fields: token"),
            401: errors("The staff bearer token is missing or wrong.",
                        "Staff authentication required"),
            403: errors("STAFF_API_TOKEN is not set on the server.",
                        "Staff API is disabled: set STAFF_API_TOKEN to enable it"),
            409: errors("Already used, the return before the collection, outside the"
                        " rental window, or the booking not paid.",
                        "Car not collected yet: scan the collection pass first",
                        "Booking not paid yet: no passes are valid for it"),
            410: errors("The pass is revoked, or its booking cancelled or refunded.",
                        "Booking cancelled: do not hand over the car",
                        "Booking refunded: do not hand over the car",
                        "Pass revoked: do not hand over the car",
                        "Pass revoked: take the keys, call the office"),
        },
        security=({"staffBearer": []},)),
    "settlements": Doc(
        "listSettlements", "Admin: Razorpay's settlements, newest first, matched or flagged",
        description="Each settlement with its items' verdict: `matched` when its items'"
                    " credits minus debits equal its amount, else `flagged` with the"
                    " `difference` (rupees); `pending` until its items are fetched.",
        headers=(_query("count", "At most this many (1-1000, default 100).", "integer"),
                 _query("skip", f"Skip this many of the newest (0-{MAX_SKIP}).", "integer")),
        ok=(200, SettlementsResponse, {"settlements": [{
            "settlement_id": "setl_DGlQ1Rj8os78Ec", "utr": "1568176960vxp0rj",
            "amount": 2939.0, "fees": 70.8, "tax": 10.8,
            "settled_at": "2026-01-10T12:00:00+00:00", "items": 2, "status": "matched",
            "matched": True, "difference": 0.0}]}),
        errors={400: errors("Bad paging.", BAD_PAGE), **_ADMIN_AUTH}, security=_ADMIN_SECURITY),
    "ledger": Doc(
        "ledgerCsv", "Admin: the ledger as CSV, one row per money movement",
        description="Columns: date, booking_id, order_id, payment_id, type (payment, refund,"
                    " dispute_deduction, dispute_reversal, adjustment, transfer), amount, fee"
                    " (GST included), tax (the GST in it), net, settlement_id, utr; rupees with"
                    " two decimals; fee, settlement_id and utr empty until settled. Default"
                    " range: this month so far.",
        headers=(_query("from", "First day, YYYY-MM-DD.", "string"),
                 _query("to", "Last day, YYYY-MM-DD (included).", "string")),
        ok=(200, None, None),
        errors={400: errors("Bad dates.", BAD_DATE), **_ADMIN_AUTH}, security=_ADMIN_SECURITY),
}

# The answers the gateway gives itself, whatever the service.
_RATE_LIMITED = errors("Too many requests from this client; retry after `Retry-After` seconds.",
                       "Too many requests. Try again in 12 seconds.")
_UNAUTHORIZED = errors("Only when the gateway requires customer tokens (AUTH_JWT_SECRET set):"
                       " the bearer token is missing, invalid or expired.",
                       "Authentication required", "Invalid or expired token")
_UNAVAILABLE = errors("A service, its database or Razorpay is unavailable; safe to retry.",
                      UNAVAILABLE, "Service temporarily unavailable. Please retry.",
                      "Payment provider is unavailable. Please retry.")
_TIMEOUT = errors("A service or Razorpay did not answer in time; retry (the operation is"
                  " idempotent).", UPSTREAM_TIMEOUT, "Payment provider timed out. Please retry.")
_ERROR_HEADERS = {
    429: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
}


def gateway_errors(route: Route) -> dict[int, tuple[str, tuple[str, ...]]]:
    """What the gateway answers on this route before (or instead of) the service."""
    answers = {503: _UNAVAILABLE, 504: _TIMEOUT}
    if route.limit_group is not None:
        answers[429] = _RATE_LIMITED
    if route.admin:
        answers[429] = errors("Too many wrong admin tokens from this client; retry after"
                              " `Retry-After` seconds.", _RATE_LIMITED[1][0])
    if route.customer_auth:
        answers[401] = _UNAUTHORIZED
    if route.body_names_customer:
        answers[403] = errors("The body's `customer_id` is not the token's customer.", FORBIDDEN)
    if route.method == "POST":
        answers[408] = errors("The body did not arrive in time.", BODY_TIMEOUT)
        answers[413] = errors("The body is larger than GATEWAY_MAX_BODY_BYTES.", BODY_TOO_LARGE)
    return answers


class _Components:
    """components.schemas, filled as models are referenced (titles dropped: noise)."""

    def __init__(self):
        self.schemas: dict[str, dict] = {
            "Id": _untitled(TypeAdapter(PositiveId).json_schema())}

    def ref(self, model: type[BaseModel]) -> dict:
        name = _NAMES.get(model, model.__name__)
        if name not in self.schemas:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for nested, definition in schema.pop("$defs", {}).items():
                self.schemas.setdefault(nested, _untitled(definition))
            self.schemas[name] = _untitled(schema)
        return {"$ref": f"#/components/schemas/{name}"}


def _untitled(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _untitled(v) for k, v in node.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    return node


# Request models are named for what they are in the API, not in the service.
_NAMES = {CreateOrderBody: "CreateOrderRequest", VerifyBody: "VerifyPaymentRequest",
          CancelBody: "CancelRequest", RefundBody: "RefundRequest", ErrorBody: "Error",
          ScanBody: "ScanPassRequest", ScanResponse: "ScanPassResponse"}


def _error_response(components: _Components, status: int, description: str,
                    messages: tuple[str, ...]) -> dict:
    examples = {f"e{i}": {"value": {"message": m}} for i, m in enumerate(messages, 1)}
    return {
        "description": description,
        "headers": {**_REQUEST_ID, **_ERROR_HEADERS.get(status, {})},
        "content": {JSON: {"schema": components.ref(ErrorBody), "examples": examples}},
    }


def _operation(components: _Components, route: Route, doc: Doc) -> dict:
    op: dict[str, Any] = {"operationId": doc.operation_id, "summary": doc.summary}
    if doc.description:
        op["description"] = doc.description
    if doc.security is not None:
        op["security"] = list(doc.security)
    elif route.customer_auth:
        op["security"] = [{}, {"bearerAuth": []}]  # a token only when the gateway wants one
    params = [{"name": part[1:-1], "in": "path", "required": True,
               "schema": components.schemas["Id"], "example": 123}
              for part in route.path.split("/") if part.startswith("{")]
    params += list(doc.headers)
    if params:
        op["parameters"] = params
    if doc.body is not None:
        op["requestBody"] = {"required": doc.body_required, "content": {JSON: {
            "schema": components.ref(doc.body),
            "example": doc.body_example}}}
    elif doc.form is not None:  # Checkout posts even an empty form: not required
        op["requestBody"] = {"required": False, "content": {FORM: {
            "schema": components.ref(doc.form)}}}
    status, model, example = doc.ok
    ok: dict[str, Any] = {
        "description": doc.summary if status != 303 else "Redirect to the success or failure page.",
        "headers": {**(doc.ok_headers or {}), **_REQUEST_ID}}
    if model is not None:
        ok["content"] = {JSON: {"schema": components.ref(model), "example": example}}
    responses = {str(status): ok}
    answers = {**gateway_errors(route), **doc.errors}  # the service's own words win
    for code in sorted(answers):
        description, messages = answers[code]
        responses[str(code)] = _error_response(components, code, description, messages)
    op["responses"] = responses
    return op


def _plain_get(operation_id: str, summary: str, content_type: str, media: dict | None = None,
               query: str | None = None) -> dict:
    """One of the gateway's own GETs: open to all, one 200 answer (a string unless `media`)."""
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "security": []}
    if query is not None:
        op["parameters"] = [{"name": query, "in": "query", "required": False,
                             "schema": {"type": "string"}}]
    op["responses"] = {"200": {"description": summary, "headers": dict(_REQUEST_ID), "content": {
        content_type: media or {"schema": {"type": "string"}}}}}
    return op


def _gateway_own_paths(components: _Components) -> dict[str, dict]:
    ready = _plain_get("ready", "Whether every service behind the gateway is ready (its"
                       " database and broker answer).", JSON, {
                           "schema": components.ref(Readiness),
                           "example": {"status": "ready", "checks": {"order_service": "ok"}}})
    ready["responses"]["503"] = _error_response(
        components, 503, "Not ready; the body's `checks` say which dependency failed.",
        ("Not ready: order_service",))
    return {
        "/healthz": {"get": _plain_get("health", "The gateway is up.", JSON, {
            "schema": components.ref(Status), "example": {"status": "ok"}})},
        "/readyz": {"get": ready},
        "/metrics": {"get": _plain_get("metrics", "Prometheus metrics (text format).",
                                       "text/plain")},
        "/payment/success": {"get": _plain_get(
            "paid_page", "Default landing page after a verified checkout.", "text/html",
            query="booking_id")},
        "/payment/failure": {"get": _plain_get(
            "failed_page", "Default landing page after a failed checkout.", "text/html",
            query="reason")},
        **{path: {"get": _plain_get(staff_page.route_name(name), f"The counter's page: {name}.",
                                    content_type)}
           for path, (name, content_type) in staff_page.FILES.items()},
        "/openapi.json": {"get": _plain_get("openapi", "This document.", JSON, {
            "schema": {"type": "object"}, "example": {"openapi": "3.1.0"}})},
    }


@cache
def spec() -> dict:
    """The description, built once and shared: callers copy it before changing it."""
    components = _Components()
    paths: dict[str, dict] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            components, route, DOCS[route.name])
    paths.update(_gateway_own_paths(components))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "A6 Pay public API",
            "version": "1.0.0",
            "description": "Razorpay payments for A6 Cars bookings, through the gateway."
                           " Amounts are rupees on the wire. Every error body is"
                           " `{\"message\": string}`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "headers": {"X-Request-Id": {
                "description": "The request's id (the client's X-Request-Id if safe, else new).",
                "required": True, "schema": {"type": "string"},
            }},
            "securitySchemes": {"adminBearer": {
                "type": "http", "scheme": "bearer",
                "description": "ADMIN_API_TOKEN, for the A6 Cars site's backend only.",
            }, "staffBearer": {
                "type": "http", "scheme": "bearer",
                "description": "STAFF_API_TOKEN, for the counter's staff (the /staff page).",
            }, "bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "HS256, `sub` = customer id. Required only when the gateway"
                               " runs with AUTH_JWT_SECRET.",
            }},
        },
    }


async def openapi_view(request: web.Request) -> web.Response:
    return web.json_response(spec())
