"""Thin views: parse and validate, call one handler, shape the seed's JSON."""

from __future__ import annotations

import json
from datetime import timedelta

from aiohttp import web

from order_service import handlers
from order_service.keys import CREATE_POOL, STATUS_READS
from order_service.schemas import CREATE_ORDER_FIELDS, MISSING_CREATE_ORDER, CreateOrderBody
from shared import status_batch
from shared.http import (
    HttpError,
    authenticated_customer,
    booking_id_from,
    customer_from,
    read_json_object,
)
from shared.money import paise_to_rupees
from shared.schemas import parse
from shared.service import POOL, RAZORPAY, SETTINGS


async def create_order(request: web.Request) -> web.Response:
    body = parse(
        CreateOrderBody, await read_json_object(request), CREATE_ORDER_FIELDS, MISSING_CREATE_ORDER
    )
    owner = authenticated_customer(request)
    if owner is not None and owner != body.customer_id:
        raise HttpError(handlers.BOOKING_NOT_FOUND, 404)
    order = await handlers.create_order(
        request.app[CREATE_POOL],
        request.app[RAZORPAY],
        booking_id=body.booking_id,
        customer_id=body.customer_id,
        amount_paise=body.amount_paise,
        reconcile_after=timedelta(seconds=request.app[SETTINGS].reconcile_first_delay_seconds),
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
    status = await handlers.payment_status(
        request.app[STATUS_READS], booking_id_from(request.match_info["booking_id"]),
        authenticated_customer(request)
    )
    return web.json_response(status)


async def payment_statuses(request: web.Request) -> web.Response:
    """The gateway's batch of payment-status reads (shared/status_batch.py): one query for
    all, and per read what the public route would have answered."""
    reads = (await read_json_object(request)).get("reads")
    if not isinstance(reads, list) or not 0 < len(reads) <= status_batch.MAX_READS or not all(
            isinstance(read, list) and len(read) == 2 and isinstance(read[0], str)
            for read in reads):
        raise HttpError("reads: a list of [booking_id, customer_id] pairs", 400)
    answers: list = [None] * len(reads)
    keys, asked = [], []
    for n, (raw, customer) in enumerate(reads):
        try:
            keys.append((booking_id_from(raw), customer_from(customer)))
            asked.append(n)
        except HttpError as exc:
            answers[n] = _answer_of(exc)
    rows = await handlers.read_statuses(request.app[POOL], keys) if keys else []
    for n, row in zip(asked, rows, strict=True):
        try:
            answers[n] = [200, json.dumps(handlers.status_of(row))]
        except HttpError as exc:
            answers[n] = _answer_of(exc)
    return web.json_response({"answers": answers})


def _answer_of(refusal: HttpError) -> list:
    """[status, body] as the public route's error middleware would have answered."""
    return [refusal.status, json.dumps({"message": refusal.message})]
