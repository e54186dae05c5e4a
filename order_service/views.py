"""Thin views: parse and validate, call one handler, shape the seed's JSON."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from order_service import handlers
from order_service.keys import CREATE_POOL, STATUS_READS
from order_service.schemas import CREATE_ORDER_FIELDS, MISSING_CREATE_ORDER, CreateOrderBody
from shared.http import HttpError, authenticated_customer, read_json_object
from shared.money import paise_to_rupees
from shared.schemas import parse
from shared.service import RAZORPAY, SETTINGS


async def create_order(request: web.Request) -> web.Response:
    body = parse(
        CreateOrderBody, await read_json_object(request), CREATE_ORDER_FIELDS, MISSING_CREATE_ORDER
    )
    owner = authenticated_customer(request)
    if owner is not None and owner != body.customer_id:
        raise HttpError(handlers.BOOKING_NOT_FOUND, 404)
    settings = request.app[SETTINGS]
    order = await handlers.create_order(
        request.app[CREATE_POOL],
        request.app[RAZORPAY],
        booking_id=body.booking_id,
        customer_id=body.customer_id,
        amount_paise=body.amount_paise,
        reconcile_after=timedelta(seconds=settings.reconcile_first_delay_seconds),
        correlation_id=request.headers.get("X-Request-Id"),
    )
    return web.json_response(
        {
            "message": "Order created successfully",
            "order_id": order.order_id,
            "amount": paise_to_rupees(order.amount_paise),
            "currency": order.currency,
            "booking_id": order.booking_id,
            "customer_email": order.customer_email,
            "customer_name": order.customer_name,
        }
    )


async def payment_status(request: web.Request) -> web.Response:
    raw = request.match_info["booking_id"]
    # length first: int() of thousands of digits is slow, and refused past 4300 digits
    if len(raw) > 19 or not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise HttpError("Invalid booking_id: must be a positive integer", 400)
    status = await handlers.payment_status(
        request.app[STATUS_READS], int(raw), authenticated_customer(request)
    )
    return web.json_response(status)
