"""aiohttp pieces the gateway and every service use: JSON errors, the error middleware,
body parsing."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import ValidationError

from shared.outage import OutageWatch

log = logging.getLogger(__name__)

# The database cannot be reached, or dropped the session.
DB_AWAY = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # class 57, operator intervention: a shutdown or restart (what in-flight connections
    # get when PostgreSQL stops), a crash, a statement cancelled on the server's side
    asyncpg.exceptions.OperatorInterventionError,
    # multi-host DATABASE_URL while no host is a read-write primary (a failover under way)
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    # a session the server ended mid-statement, caught by asyncpg in a state it cannot
    # leave (the pool terminates that connection: shared/db.py)
    asyncpg.InternalClientError,
    ConnectionError,
    OSError,
    TimeoutError,
)
# The server answers but cannot do the work for now, whatever the statement: out of disk,
# memory or connections (class 53), an I/O or other system error (class 58), a read-only
# session (a switchover behind a pooler), a serialization failure or a deadlock. Each
# passes with time; none says the request or the event is bad.
DB_BUSY = (
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.PostgresSystemError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)
# Retried until the database does the work (503 for a request): never the input's fault.
DB_ERRORS = DB_AWAY + DB_BUSY


class HttpError(Exception):
    """A domain failure with the HTTP status and client message it maps to."""

    status = 400

    def __init__(
        self, message: str, status: int | None = None, headers: dict | None = None,
        code: str = "bad_request",
    ):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.code = code  # a short machine-readable reason (the checkout callback uses it)


def booking_id_from(raw: str) -> int:
    """A booking id from a URL path segment. The gateway checks it too, before a status read
    joins a batch: an id of thousands of escaped characters would swell the batch's body
    past the service's limit and fail every read in it."""
    # length first: int() of thousands of digits is slow, and refused past 4300 digits
    if len(raw) > 19 or not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise HttpError("Invalid booking_id: must be a positive integer", 400)
    return int(raw)


CUSTOMER_HEADER = "X-A6-Customer-Id"  # set only by the gateway, when customer auth is on


def authenticated_customer(request: web.Request) -> int | None:
    """The customer the gateway authenticated, or None when auth is off."""
    return customer_from(request.headers.get(CUSTOMER_HEADER))


def customer_from(value: object) -> int | None:
    """A customer id as the gateway passes it (digits), else None."""
    ok = isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit()
    return int(value) if ok else None


def json_error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 4xx that says what is wrong with it."""
    declared = request.headers.get("Content-Type")
    if declared is not None and not (request.content_type == "application/json"
                                     or request.content_type.endswith("+json")):
        raise HttpError("Content-Type must be application/json", 415)
    raw = await request.read()
    if not raw.strip():
        raise HttpError("Request body must be a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise HttpError("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError("Request body must be a JSON object")
    return body


def first_validation_message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error.get("loc", ())) or "body"
    return f"Invalid field: {field}: {error.get('msg', 'invalid value')}"


NOT_FOUND = "Not found"
METHOD_NOT_ALLOWED = "Method not allowed"
BODY_TOO_LARGE = "Request body too large"
INTERNAL = "Internal server error"
DATABASE_AWAY = "Service temporarily unavailable. Please retry."
_FRAMEWORK_MESSAGES = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED, 413: BODY_TOO_LARGE}


# Requests answered 503 for the database are one line when they start and one when a
# request of a route that failed gets through again, per process: /healthz or /metrics
# answering in between says nothing about the database.
_database = OutageWatch("database", "http")
_failed_routes: set[web.AbstractRoute] = set()


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Every failure leaves as JSON with a `message`: never a stack trace, never HTML."""
    try:
        response = await handler(request)
    except HttpError as exc:
        return json_error(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_error(exc.status, _FRAMEWORK_MESSAGES.get(exc.status, exc.reason), headers)
    except DB_ERRORS as exc:
        _failed_routes.add(request.match_info.route)
        _database.lost(exc)
        return json_error(503, DATABASE_AWAY)
    except Exception:
        log.exception("unhandled error")
        return json_error(500, INTERNAL)
    # while the database answers, this is one attribute read per request
    if _database.down and request.match_info.route in _failed_routes:
        _failed_routes.clear()
        _database.back()
    return response


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
