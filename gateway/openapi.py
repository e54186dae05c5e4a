"""The public API as OpenAPI 3.1: the one description, served at `GET /openapi.json`.

Built in Python rather than kept as a JSON file so shared pieces (the error body, the
gateway's own errors) are written once. Service messages are literal here (the gateway
does not import the services); tests/unit/test_openapi.py checks each one against the
constant its handler raises, and every route in gateway/routes.py against `paths`.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from aiohttp import web

from gateway.errors import BODY_TIMEOUT, BODY_TOO_LARGE, FORBIDDEN, UNAVAILABLE, UPSTREAM_TIMEOUT

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MAX_ID = 2**63 - 1  # a bigint: the services refuse anything larger
PAY_ID = "pay_1DP5MMOQ9HrQ9jK8"
ORDER_ID = "order_1DP5MMOQ9HrQ9jK8"
SIGNATURE = "9ef4dffbfd84f1318f6739a3ce19f9d85851857ae648f114332d8401e0949a3d"
TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, *messages: str, headers: dict | None = None) -> dict:
    """A response whose body is `{"message": ...}`, one named example per message."""
    examples = {f"e{i}": {"value": {"message": m}} for i, m in enumerate(messages, 1)}
    response: dict[str, Any] = {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
        "content": {JSON: {"schema": _ref("Error"), "examples": examples}},
    }
    response["headers"].update(headers or {})
    return response


def _ok(description: str, schema: dict, example: dict) -> dict:
    return {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
        "content": {JSON: {"schema": schema, "example": example}},
    }


# Answers the gateway itself gives, whatever the service.
_RATE_LIMITED = _error(
    "Too many requests from this client; retry after `Retry-After` seconds.",
    "Too many requests. Try again in 12 seconds.",
    headers={"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
)
_UNAUTHORIZED = _error(
    "Only when the gateway requires customer tokens (AUTH_JWT_SECRET set): the bearer token"
    " is missing, invalid or expired.",
    "Authentication required", "Invalid or expired token",
    headers={"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
)
_TOO_LARGE = _error("The body is larger than GATEWAY_MAX_BODY_BYTES.", BODY_TOO_LARGE)
_SLOW_BODY = _error("The body did not arrive in time.", BODY_TIMEOUT)
_UNAVAILABLE = _error(
    "A service, its database or Razorpay is unavailable; safe to retry.",
    UNAVAILABLE, "Service temporarily unavailable. Please retry.",
    "Payment provider is unavailable. Please retry.",
)
_TIMEOUT = _error(
    "A service or Razorpay did not answer in time; retry (the operation is idempotent).",
    UPSTREAM_TIMEOUT, "Payment provider timed out. Please retry.",
)
_FORBIDDEN = _error("The body's `customer_id` is not the token's customer.", FORBIDDEN)
_BEARER_OPTIONAL = [{}, {"bearerAuth": []}]


def _json_body(schema_name: str, example: dict) -> dict:
    return {"required": True, "content": {JSON: {"schema": _ref(schema_name), "example": example}}}


def _create_order() -> dict:
    return {
        "operationId": "createOrder",
        "summary": "Create (or return the open) Razorpay order for a booking",
        "security": _BEARER_OPTIONAL,
        "requestBody": _json_body(
            "CreateOrderRequest", {"booking_id": 123, "customer_id": 45, "amount": 1500.00}
        ),
        "responses": {
            "200": _ok("The order to open Razorpay Checkout with.", _ref("CreateOrderResponse"), {
                "message": "Order created successfully", "order_id": ORDER_ID,
                "amount": 1500.00, "currency": "INR", "booking_id": 123,
                "customer_email": "john@example.com", "customer_name": "John Doe",
            }),
            "400": _error(
                "Missing or invalid fields, or an amount that is not the booking's.",
                "Missing required fields: booking_id, customer_id, amount",
                "Amount does not match the booking amount.",
                "Request body is not valid JSON",
            ),
            "401": _UNAUTHORIZED,
            "403": _FORBIDDEN,
            "404": _error("No such booking for this customer.",
                          "Booking not found or does not belong to this customer."),
            "408": _SLOW_BODY,
            "409": _error("The booking is already paid.", "Payment already made for this booking."),
            "413": _TOO_LARGE,
            "429": _RATE_LIMITED,
            "502": _error("Razorpay refused the order or answered with another order.",
                          "Payment provider rejected the order request.",
                          "Payment provider returned an unexpected order."),
            "503": _UNAVAILABLE,
            "504": _TIMEOUT,
        },
    }


def _verify_payment() -> dict:
    return {
        "operationId": "verifyPayment",
        "summary": "Verify Checkout's signature and Razorpay's capture; returns the QR passes",
        "security": _BEARER_OPTIONAL,
        "requestBody": _json_body("VerifyPaymentRequest", {
            "razorpay_payment_id": PAY_ID, "razorpay_order_id": ORDER_ID,
            "razorpay_signature": SIGNATURE,
            "booking_id": 123, "customer_id": 45,
        }),
        "responses": {
            "200": _ok("Paid; the same body however often the same payment is verified.",
                       _ref("VerifyPaymentResponse"), {
                "message": "✅ Payment verified and booking confirmed!",
                "razorpay_payment_id": PAY_ID, "collection_qr": TINY_PNG, "return_qr": TINY_PNG,
                "booking_details": {
                    "booking_id": 123, "customer_name": "John Doe", "car": "Maruti Swift",
                    "amount": 1500.00, "start_date": "2025-12-28", "end_date": "2025-12-30",
                },
            }),
            "400": _error(
                "Bad signature, missing/invalid fields, or a payment Razorpay has not captured"
                " for this order and amount.",
                "❌ Payment signature verification failed. Payment may be fraudulent.",
                "Payment not captured by Razorpay. Status: authorized",
                "Payment does not match this order.",
                "Missing required fields: razorpay_payment_id, razorpay_order_id,"
                " razorpay_signature, booking_id, customer_id",
            ),
            "401": _UNAUTHORIZED,
            "403": _FORBIDDEN,
            "404": _error("The order is not this booking's and customer's.", "Booking not found"),
            "408": _SLOW_BODY,
            "409": _error("The booking was paid by another payment.",
                          "Payment already completed for this booking"),
            "413": _TOO_LARGE,
            "429": _RATE_LIMITED,
            "503": _UNAVAILABLE,
            "504": _TIMEOUT,
        },
    }


def _callback() -> dict:
    return {
        "operationId": "checkoutCallback",
        "summary": "Razorpay Checkout's callback_url: verifies, then redirects the browser",
        "description": "Verified like verify-payment (shares its rate limit). Any outcome is"
                       " a 303 to CHECKOUT_SUCCESS_URL (`?booking_id=`) or CHECKOUT_FAILURE_URL"
                       " (`?reason=`); failed payments post `error[...]` fields instead.",
        # Not required: even an empty post is answered, with the failure redirect.
        "requestBody": {"required": False, "content": {FORM: {"schema": _ref("CallbackForm")}}},
        "responses": {
            "303": {
                "description": "Redirect to the success or failure page.",
                "headers": {
                    "Location": {"required": True, "schema": {"type": "string"}},
                    "X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"},
                },
            },
            "408": _SLOW_BODY,
            "413": _TOO_LARGE,
            "429": _RATE_LIMITED,
            "503": _UNAVAILABLE,
            "504": _TIMEOUT,
        },
    }


def _webhook() -> dict:
    return {
        "operationId": "razorpayWebhook",
        "summary": "Razorpay's signed webhook (payment.* and order.paid events)",
        "description": "The signature is HMAC-SHA256 of the raw body with the webhook secret,"
                       " checked before the body is parsed. Duplicates and unknown events are"
                       " acknowledged. Never rate limited.",
        "parameters": [
            {"name": "X-Razorpay-Signature", "in": "header", "required": True,
             "schema": {"type": "string", "minLength": 1}},
            {"name": "X-Razorpay-Event-Id", "in": "header", "required": False,
             "description": "Deduplication key; a stable key is derived when absent.",
             "schema": {"type": "string"}},
        ],
        "requestBody": {"required": True, "content": {JSON: {
            "schema": _ref("WebhookEvent"),
            "example": {"event": "payment.captured", "payload": {"payment": {"entity": {
                "id": PAY_ID, "order_id": ORDER_ID, "amount": 150000, "currency": "INR",
                "method": "card", "status": "captured"}}}},
        }}},
        "responses": {
            "200": _ok("Recorded (or a duplicate, or an event we do not act on).",
                       _ref("Status"), {"status": "ok"}),
            "400": _error("Missing or invalid signature, or a payload that is not an event.",
                          "Missing webhook signature", "Invalid webhook signature",
                          "Malformed webhook payload"),
            "408": _SLOW_BODY,
            "413": _TOO_LARGE,
            "503": _error("Not recorded (database down); Razorpay retries.",
                          "Service temporarily unavailable. Please retry.", UNAVAILABLE),
            "504": _TIMEOUT,
        },
    }


def _payment_status() -> dict:
    return {
        "operationId": "paymentStatus",
        "summary": "The payment status of a booking",
        "security": _BEARER_OPTIONAL,
        "parameters": [{"name": "booking_id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        "example": 123}],
        "responses": {
            "200": _ok("The booking's payment; `refunded` (paid: false) once refunded in full.",
                       _ref("PaymentStatusResponse"),
                       {"status": "paid", "paid": True, "razorpay_payment_id": PAY_ID}),
            "400": _error("booking_id is not a positive integer.",
                          "Invalid booking_id: must be a positive integer"),
            "401": _UNAUTHORIZED,
            "404": _error("No order was created for this booking (or not this customer's).",
                          "Payment not found"),
            "429": _RATE_LIMITED,
            "503": _UNAVAILABLE,
            "504": _TIMEOUT,
        },
    }


_ADMIN_UNAUTHORIZED = _error(
    "The admin bearer token is missing or wrong.", "Admin authentication required",
    headers={"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
)
_ADMIN_DISABLED = _error("ADMIN_API_TOKEN is not set on the server.",
                         "Admin API is disabled: set ADMIN_API_TOKEN to enable it")
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": True,
    "description": "A retry with the same key gets the first answer (and never a second"
                   " refund); the same key with another body gets 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_KEY_REUSED = _error("The Idempotency-Key was used before with another body.",
                     "Idempotency-Key was already used with a different request")
_REFUND_EXAMPLE = {"id": 17, "booking_id": 123, "amount": 500.0, "status": "pending",
                   "final": False, "cause": "admin", "reason": "early return",
                   "failure_reason": None, "created_at": "2026-01-05T10:00:00+00:00"}


def _admin_responses(ok: dict, **more: dict) -> dict:
    responses = {
        "200": ok,
        "400": _error("Invalid fields or a missing Idempotency-Key header.",
                      "Idempotency-Key header is required",
                      "Invalid booking_id: must be a positive integer",
                      "Request body is not valid JSON"),
        "401": _ADMIN_UNAUTHORIZED,
        "403": _ADMIN_DISABLED,
        "408": _SLOW_BODY,
        "413": _TOO_LARGE,
        "422": _KEY_REUSED,
        "503": _UNAVAILABLE,
        "504": _TIMEOUT,
    }
    responses.update(more)
    return dict(sorted(responses.items()))


def _cancel_booking() -> dict:
    return {
        "operationId": "cancelBooking",
        "summary": "Admin: cancel a booking; a paid one is refunded (minus the fee)",
        "description": "Unpaid: no new order can be made, and a payment captured later anyway"
                       " is refunded in full automatically. Paid: everything not yet refunded"
                       " minus `cancellation_fee` is refunded and both passes are revoked."
                       " Cancelling again returns the same answer.",
        "security": [{"adminBearer": []}],
        "parameters": [
            {"name": "booking_id", "in": "path", "required": True, "schema": _ref("Id")},
            _IDEMPOTENCY_KEY,
        ],
        "requestBody": {"required": False, "content": {JSON: {
            "schema": _ref("CancelRequest"),
            "example": {"reason": "customer cancelled", "cancellation_fee": 200.0}}}},
        "responses": _admin_responses(
            _ok("The booking is cancelled.", _ref("CancelResponse"), {
                "message": "Booking cancelled", "booking_id": 123, "status": "cancelled",
                "paid": True, "cancellation_fee": 200.0, "reason": "customer cancelled",
                "cancelled_at": "2026-01-05T10:00:00+00:00",
                "refund": {**_REFUND_EXAMPLE, "amount": 1300.0, "cause": "cancellation"}}),
            **{"404": _error("No such booking.", "Booking not found"),
               "409": _error("A request with this key is still being answered.",
                             "A request with this Idempotency-Key is still in progress;"
                             " retry shortly")}),
    }


def _refund() -> dict:
    return {
        "operationId": "refundBooking",
        "summary": "Admin: refund part or all of what remains of a booking's payment",
        "security": [{"adminBearer": []}],
        "parameters": [_IDEMPOTENCY_KEY],
        "requestBody": _json_body("RefundRequest", {"booking_id": 123, "amount": 500.0,
                                                    "reason": "early return"}),
        "responses": _admin_responses(
            _ok("The refund (status requested, pending, processed or failed).",
                _ref("RefundResponse"), {"message": "Refund initiated",
                                         "refund": _REFUND_EXAMPLE, "remaining": 1000.0}),
            **{"404": _error("No such booking.", "Booking not found"),
               "409": _error("Unpaid, nothing left to refund, or the same key in progress.",
                             "Booking has no captured payment to refund",
                             "Nothing left to refund for this booking")}),
    }


def _html_page(operation_id: str, summary: str, param: str) -> dict:
    return {
        "operationId": operation_id, "summary": summary, "security": [],
        "parameters": [{"name": param, "in": "query", "required": False,
                        "schema": {"type": "string"}}],
        "responses": {"200": {
            "description": summary,
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
            "content": {"text/html": {"schema": {"type": "string"}}},
        }},
    }


def _plain_get(operation_id: str, summary: str, schema: dict, example: dict) -> dict:
    return {"operationId": operation_id, "summary": summary, "security": [],
            "responses": {"200": _ok(summary, schema, example)}}


def _readiness() -> dict:
    example = {"status": "ready", "checks": {"order_service": "ok"}}
    return {"operationId": "ready", "summary": "Whether every service behind the gateway"
            " is ready (its database and broker answer).", "security": [],
            "responses": {
                "200": _ok("Ready.", _ref("Readiness"), example),
                "503": _error("Not ready; the body's `checks` say which dependency failed.",
                              "Not ready: order_service"),
            }}


def _metrics() -> dict:
    return {"operationId": "metrics", "summary": "Prometheus metrics (text format).",
            "security": [], "responses": {"200": {
                "description": "Prometheus text exposition format.",
                "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }}}


_SCHEMAS: dict[str, dict] = {
    "Readiness": {"type": "object", "required": ["status", "checks"], "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    }},
    "Error": {"type": "object", "required": ["message"],
              "properties": {"message": {"type": "string"}}},
    "Status": {"type": "object", "required": ["status"],
               "properties": {"status": {"type": "string", "const": "ok"}}},
    "CreateOrderRequest": {
        "type": "object",
        "required": ["booking_id", "customer_id", "amount"],
        "properties": {
            "booking_id": _ref("Id"),
            "customer_id": _ref("Id"),
            "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 100_000_000,
                       "multipleOf": 0.01, "description": "Rupees, at most 2 decimals;"
                       " must equal the booking's amount."},
        },
    },
    "CreateOrderResponse": {
        "type": "object",
        "required": ["message", "order_id", "amount", "currency", "booking_id",
                     "customer_email", "customer_name"],
        "properties": {
            "message": {"type": "string"}, "order_id": {"type": "string"},
            "amount": {"type": "number"}, "currency": {"type": "string", "const": "INR"},
            "booking_id": _ref("Id"), "customer_email": {"type": "string"},
            "customer_name": {"type": "string"},
        },
    },
    "VerifyPaymentRequest": {
        "type": "object",
        "required": ["razorpay_payment_id", "razorpay_order_id", "razorpay_signature",
                     "booking_id", "customer_id"],
        "properties": {
            "razorpay_payment_id": _ref("RazorpayId"),
            "razorpay_order_id": _ref("RazorpayId"),
            "razorpay_signature": {"type": "string", "minLength": 1, "maxLength": 256},
            "booking_id": _ref("Id"),
            "customer_id": _ref("Id"),
        },
    },
    "VerifyPaymentResponse": {
        "type": "object",
        "required": ["message", "razorpay_payment_id", "collection_qr", "return_qr",
                     "booking_details"],
        "properties": {
            "message": {"type": "string"}, "razorpay_payment_id": {"type": "string"},
            "collection_qr": _ref("PngDataUrl"), "return_qr": _ref("PngDataUrl"),
            "booking_details": {
                "type": "object",
                "required": ["booking_id", "customer_name", "car", "amount", "start_date",
                             "end_date"],
                "properties": {
                    "booking_id": _ref("Id"), "customer_name": {"type": "string"},
                    "car": {"type": "string"}, "amount": {"type": "number"},
                    "start_date": {"type": "string", "format": "date"},
                    "end_date": {"type": "string", "format": "date"},
                },
            },
        },
    },
    "CallbackForm": {
        "type": "object",
        "description": "What Checkout posts: the three fields on success, `error[...]` fields"
                       " on failure. Anything else redirects to the failure page.",
        "properties": {
            "razorpay_payment_id": {"type": "string"},
            "razorpay_order_id": {"type": "string"},
            "razorpay_signature": {"type": "string"},
        },
    },
    "WebhookEvent": {
        "type": "object",
        "required": ["event"],
        "properties": {"event": {"type": "string", "example": "payment.captured"},
                       "payload": {"type": "object"}},
    },
    "PaymentStatusResponse": {
        "type": "object",
        "required": ["status", "paid", "razorpay_payment_id"],
        "properties": {
            "status": {"type": "string", "enum": ["pending", "paid", "failed", "refunded"]},
            "paid": {"type": "boolean"},
            "razorpay_payment_id": {"type": ["string", "null"]},
        },
    },
    "CancelRequest": {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 500},
            "cancellation_fee": {"type": "number", "minimum": 0, "maximum": 100_000_000,
                                 "multipleOf": 0.01,
                                 "description": "Rupees kept from the refund."},
        },
    },
    "RefundRequest": {
        "type": "object",
        "required": ["booking_id"],
        "properties": {
            "booking_id": _ref("Id"),
            "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 100_000_000,
                       "multipleOf": 0.01,
                       "description": "Rupees; default all that remains to refund."},
            "reason": {"type": "string", "maxLength": 500},
        },
    },
    "Refund": {
        "type": "object",
        "required": ["id", "booking_id", "amount", "status", "final", "cause", "created_at"],
        "properties": {
            "id": _ref("Id"), "booking_id": _ref("Id"), "amount": {"type": "number"},
            "status": {"type": "string",
                       "enum": ["requested", "pending", "processed", "failed"]},
            "final": {"type": "boolean"},
            "cause": {"type": "string",
                      "enum": ["admin", "cancellation", "captured_after_cancellation"]},
            "reason": {"type": ["string", "null"]},
            "failure_reason": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "RefundResponse": {
        "type": "object", "required": ["message", "refund", "remaining"],
        "properties": {"message": {"type": "string"}, "refund": _ref("Refund"),
                       "remaining": {"type": "number"}},
    },
    "CancelResponse": {
        "type": "object",
        "required": ["message", "booking_id", "status", "paid", "cancellation_fee", "refund"],
        "properties": {
            "message": {"type": "string"}, "booking_id": _ref("Id"),
            "status": {"type": "string", "const": "cancelled"}, "paid": {"type": "boolean"},
            "cancellation_fee": {"type": "number"}, "reason": {"type": ["string", "null"]},
            "cancelled_at": {"type": "string", "format": "date-time"},
            "refund": {"anyOf": [_ref("Refund"), {"type": "null"}]},
        },
    },
    "Id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "RazorpayId": {"type": "string", "minLength": 1, "maxLength": 64,
                   "pattern": "^[A-Za-z0-9_]+$"},
    "PngDataUrl": {"type": "string", "pattern": "^data:image/png;base64,"},
}


@cache
def _spec() -> dict:
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
        "paths": {
            "/api/razorpay/create-order": {"post": _create_order()},
            "/api/razorpay/verify-payment": {"post": _verify_payment()},
            "/api/razorpay/callback": {"post": _callback()},
            "/api/razorpay/webhook": {"post": _webhook()},
            "/api/razorpay/payment-status/{booking_id}": {"get": _payment_status()},
            "/api/razorpay/bookings/{booking_id}/cancel": {"post": _cancel_booking()},
            "/api/razorpay/refunds": {"post": _refund()},
            "/healthz": {"get": _plain_get("health", "The gateway is up.", _ref("Status"),
                                           {"status": "ok"})},
            "/payment/success": {"get": _html_page(
                "paid_page", "Default landing page after a verified checkout.", "booking_id")},
            "/payment/failure": {"get": _html_page(
                "failed_page", "Default landing page after a failed checkout.", "reason")},
            "/openapi.json": {"get": _plain_get("openapi", "This document.",
                                                {"type": "object"}, {"openapi": "3.1.0"})},
            "/readyz": {"get": _readiness()},
            "/metrics": {"get": _metrics()},
        },
        "components": {
            "schemas": _SCHEMAS,
            "headers": {"X-Request-Id": {
                "description": "The request's id (the client's X-Request-Id if safe, else new).",
                "required": True, "schema": {"type": "string"},
            }},
            "securitySchemes": {"adminBearer": {
                "type": "http", "scheme": "bearer",
                "description": "ADMIN_API_TOKEN, for the A6 Cars site's backend only.",
            }, "bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "HS256, `sub` = customer id. Required only when the gateway"
                               " runs with AUTH_JWT_SECRET.",
            }},
        },
    }


def openapi_spec() -> dict:
    """A fresh copy of the description (callers may mutate it)."""
    return copy.deepcopy(_spec())


async def openapi_view(request: web.Request) -> web.Response:
    return web.json_response(_spec())
