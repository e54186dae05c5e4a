"""The admin API for disputes (Bearer ADMIN_API_TOKEN, as the refund endpoints): list them,
contest one with our evidence, accept one. POSTs are idempotent by Idempotency-Key: the same
key gives the first answer and calls Razorpay once."""

from __future__ import annotations

from aiohttp import web

from order_service import disputes, idempotency
from order_service.admin import answer_once, require_admin
from order_service.dispute_schemas import NOT_FOUND
from shared.http import HttpError
from shared.schemas import is_razorpay_id
from shared.service import POOL


async def list_disputes(request: web.Request) -> web.Response:
    require_admin(request)
    status = request.query.get("status") or None
    return web.json_response(await disputes.list_disputes(request.app[POOL], status))


async def contest(request: web.Request) -> web.Response:
    return await _respond(request, "dispute_contest", disputes.contest_dispute)


async def accept(request: web.Request) -> web.Response:
    return await _respond(request, "dispute_accept", disputes.accept_dispute)


async def _respond(request: web.Request, endpoint: str, operation) -> web.Response:
    require_admin(request)
    key = idempotency.idempotency_key(request.headers)
    dispute_id = request.match_info["dispute_id"]
    if not is_razorpay_id(dispute_id):  # it names no dispute, and must not reach SQL
        raise HttpError(NOT_FOUND, 404)
    return await answer_once(request, endpoint, key, {"dispute_id": dispute_id}, operation,
                             dispute_id)

