"""Thin views over handlers.verify_payment: the JSON call and the checkout callback form."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError

from shared.http import DB_ERRORS, HttpError, authenticated_customer, read_json_object
from shared.schemas import parse
from shared.service import POOL, RAZORPAY, SETTINGS
from verification_service import handlers
from verification_service.schemas import (
    CALLBACK_FIELDS,
    MISSING_VERIFY,
    VERIFY_FIELDS,
    CallbackForm,
    VerifyBody,
)


async def verify_payment(request: web.Request) -> web.Response:
    body = parse(VerifyBody, await read_json_object(request), VERIFY_FIELDS, MISSING_VERIFY)
    owner = authenticated_customer(request)
    if owner is not None and owner != body.customer_id:
        raise HttpError(handlers.BOOKING_NOT_FOUND, 404)
    return web.json_response(await _verify(request, handlers.VerifyRequest(
        order_id=body.razorpay_order_id,
        payment_id=body.razorpay_payment_id,
        signature=body.razorpay_signature,
        booking_id=body.booking_id,
        customer_id=body.customer_id,
    )))


async def checkout_callback(request: web.Request) -> web.Response:
    """Razorpay Checkout's callback_url: a form post, answered with a 303 to our pages."""
    settings = request.app[SETTINGS]
    try:
        form = await request.post()
    except (ValueError, LookupError):  # undecodable body, unknown charset
        form = {}
    fields = {k: form.get(k) for k in CALLBACK_FIELDS}
    if not any(fields.values()):
        # Checkout posts error[...] fields when the payment failed; nothing to verify.
        reason = "payment_failed" if form.get("error[code]") else "missing_fields"
        return _redirect(settings.checkout_failure_url, reason=reason)
    try:
        data = CallbackForm.model_validate(fields)
    except ValidationError:
        return _redirect(settings.checkout_failure_url, reason="missing_fields")
    try:
        result = await _verify(request, handlers.VerifyRequest(
            data.razorpay_order_id, data.razorpay_payment_id, data.razorpay_signature))
    except HttpError as exc:
        return _redirect(settings.checkout_failure_url, reason=exc.code)
    except DB_ERRORS:  # a browser is better served by our failure page than by JSON
        return _redirect(settings.checkout_failure_url, reason="unavailable")
    booking_id = result["booking_details"]["booking_id"]
    return _redirect(settings.checkout_success_url, booking_id=booking_id)


async def _verify(request: web.Request, req: handlers.VerifyRequest) -> dict:
    return await handlers.verify_payment(
        request.app[POOL], request.app[RAZORPAY], request.app[SETTINGS], req,
        correlation_id=request.headers.get("X-Request-Id"))


def _redirect(base: str, **params) -> web.Response:
    separator = "&" if "?" in base else "?"
    location = base + separator + urlencode(params)
    return web.Response(status=303, headers={"Location": location})
