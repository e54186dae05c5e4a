"""The admin API (the A6 Cars site's backend, service to service): cancel a booking, refund
a payment. Bearer ADMIN_API_TOKEN, compared in constant time; idempotent by Idempotency-Key."""

from __future__ import annotations

from aiohttp import web

from order_service import cancellations, idempotency
from order_service.bearer import require_bearer
from order_service.schemas import CancelBody, RefundBody
from shared.http import booking_id_from, read_json_object
from shared.schemas import parse
from shared.service import POOL, RAZORPAY, SETTINGS

ADMIN_DISABLED = "Admin API is disabled: set ADMIN_API_TOKEN to enable it"
ADMIN_REQUIRED = "Admin authentication required"


def require_admin(request: web.Request) -> None:
    require_bearer(request, request.app[SETTINGS].admin_api_token,
                   disabled=ADMIN_DISABLED, required=ADMIN_REQUIRED)


async def cancel_booking(request: web.Request) -> web.Response:
    require_admin(request)
    booking_id = booking_id_from(request.match_info["booking_id"])
    key = idempotency.idempotency_key(request.headers)
    raw = await read_json_object(request) if (await request.read()).strip() else {}
    body = parse(CancelBody, raw, (), "")
    return await answer_once(
        request, "cancel", key,
        {"booking_id": booking_id, "fee": body.fee_paise, "reason": body.reason},
        cancellations.cancel_booking, booking_id, reason=body.reason, fee_paise=body.fee_paise,
        correlation_id=request.headers.get("X-Request-Id"))


async def refund(request: web.Request) -> web.Response:
    require_admin(request)
    key = idempotency.idempotency_key(request.headers)
    body = parse(RefundBody, await read_json_object(request), ("booking_id",),
                 "Missing required fields: booking_id")
    return await answer_once(
        request, "refund", key,
        {"booking_id": body.booking_id, "amount": body.amount_paise, "reason": body.reason},
        cancellations.refund_booking, body.booking_id, amount_paise=body.amount_paise,
        reason=body.reason, idempotency_key=key,
        correlation_id=request.headers.get("X-Request-Id"))


async def answer_once(request: web.Request, endpoint: str, key: str, fields: dict,
                      operation, *args, **kwargs) -> web.Response:
    """The first answer to `key`: `operation(pool, razorpay, *args, **kwargs)` runs once;
    `fields` (the request as hashed) tell the same key sent with another request."""
    pool = request.app[POOL]
    status, answer = await idempotency.run_once(
        pool, endpoint, key, idempotency.request_hash(endpoint, fields),
        lambda: operation(pool, request.app[RAZORPAY], *args, **kwargs))
    return web.json_response(answer, status=status)
