"""The admin API (the A6 Cars site's backend, service to service): cancel a booking, refund
a payment. Bearer ADMIN_API_TOKEN, compared in constant time; idempotent by Idempotency-Key."""

from __future__ import annotations

from aiohttp import web

from order_service import cancellations, idempotency
from order_service.bearer import require_bearer
from order_service.schemas import CancelBody, RefundBody
from shared.http import HttpError, read_json_object
from shared.schemas import parse
from shared.service import POOL, RAZORPAY, SETTINGS

ADMIN_DISABLED = "Admin API is disabled: set ADMIN_API_TOKEN to enable it"
ADMIN_REQUIRED = "Admin authentication required"


def require_admin(request: web.Request) -> None:
    require_bearer(request, request.app[SETTINGS].admin_api_token,
                   disabled=ADMIN_DISABLED, required=ADMIN_REQUIRED)


async def cancel_booking(request: web.Request) -> web.Response:
    require_admin(request)
    booking_id = _booking_id(request.match_info["booking_id"])
    key = idempotency.idempotency_key(request.headers)
    raw = await _body_or_empty(request)
    body = parse(CancelBody, raw, (), "")
    digest = idempotency.request_hash(
        "cancel", {"booking_id": booking_id, "fee": body.fee_paise, "reason": body.reason})
    pool = request.app[POOL]

    async def work():
        return 200, await cancellations.cancel_booking(
            pool, request.app[RAZORPAY], booking_id, reason=body.reason,
            fee_paise=body.fee_paise, correlation_id=request.headers.get("X-Request-Id"))

    status, answer = await idempotency.run_once(pool, "cancel", key, digest, work)
    return web.json_response(answer, status=status)


async def refund(request: web.Request) -> web.Response:
    require_admin(request)
    key = idempotency.idempotency_key(request.headers)
    body = parse(RefundBody, await read_json_object(request), ("booking_id",),
                 "Missing required fields: booking_id")
    digest = idempotency.request_hash("refund", {
        "booking_id": body.booking_id, "amount": body.amount_paise, "reason": body.reason})
    pool = request.app[POOL]

    async def work():
        return 200, await cancellations.refund_booking(
            pool, request.app[RAZORPAY], body.booking_id, amount_paise=body.amount_paise,
            reason=body.reason, idempotency_key=key,
            correlation_id=request.headers.get("X-Request-Id"))

    status, answer = await idempotency.run_once(pool, "refund", key, digest, work)
    return web.json_response(answer, status=status)


async def _body_or_empty(request: web.Request) -> dict:
    if not (await request.read()).strip():
        return {}
    return await read_json_object(request)


def _booking_id(raw: str) -> int:
    if len(raw) > 19 or not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise HttpError("Invalid booking_id: must be a positive integer", 400)
    return int(raw)
