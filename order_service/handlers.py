"""Order logic: no aiohttp objects here. Each function takes its inputs and its ports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

import asyncpg

from shared.events import OrderCreated
from shared.http import HttpError
from shared.logging import log_ctx
from shared.outbox import add_event, outbox_transaction
from shared.payment_state import PaymentStatus, public_status
from shared.razorpay_client import (
    OrderRequest,
    RazorpayClient,
    RazorpayRejected,
    RazorpayTimeout,
    RazorpayUnavailable,
)

log = logging.getLogger(__name__)

BOOKING_NOT_FOUND = "Booking not found or does not belong to this customer."
ALREADY_PAID = "Payment already made for this booking."
AMOUNT_MISMATCH = "Amount does not match the booking amount."
PAYMENT_NOT_FOUND = "Payment not found"

# SQL as constants: tests/integration/test_query_plans.py EXPLAINs each one.
BOOKING_FOR_UPDATE = (
    "SELECT b.*, c.name AS customer_name, c.email AS customer_email"
    " FROM bookings b JOIN customers c ON c.id = b.customer_id"
    " WHERE b.id = $1 AND b.customer_id = $2 FOR UPDATE OF b"
)
BOOKING_PAYMENTS = "SELECT * FROM payments WHERE booking_id = $1 ORDER BY created_at"
INSERT_PAYMENT = (
    "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
    " amount_paise, currency, next_reconcile_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval) RETURNING *"
)
PAYMENT_STATUS = (
    "SELECT status, razorpay_payment_id, refunded_paise >= amount_paise AS refunded"
    " FROM payments"
    " WHERE booking_id = $1 AND ($2::bigint IS NULL OR customer_id = $2)"
    " ORDER BY (status = 'captured') DESC, created_at DESC LIMIT 1"
)


@dataclass(frozen=True)
class OrderView:
    order_id: str
    amount_paise: int
    currency: str
    booking_id: int
    customer_email: str
    customer_name: str


def receipt_for(booking: asyncpg.Record) -> str:
    """Stable per booking (so a retried create finds its order) and unique across databases."""
    return f"a6-bk{booking['id']}-{int(booking['created_at'].timestamp() * 1000)}"[:40]


async def create_order(
    pool: asyncpg.Pool,
    razorpay: RazorpayClient,
    *,
    booking_id: int,
    customer_id: int,
    amount_paise: int,
    reconcile_after: timedelta,
    correlation_id: str | None = None,
) -> OrderView:
    # A bounded wait for a connection: when every create is stuck on Razorpay, say so (503).
    async with outbox_transaction(pool, timeout=razorpay.timeout * 2 + 5) as conn:
        # The booking row lock serialises racing creates for one booking: the first makes
        # the Razorpay order, the rest wait here and then find it.
        booking = await conn.fetchrow(
            BOOKING_FOR_UPDATE,
            booking_id,
            customer_id,
            timeout=razorpay.timeout + 10,
        )
        if booking is None or booking["status"] == "cancelled":
            raise HttpError(BOOKING_NOT_FOUND, 404)
        existing = await conn.fetch(BOOKING_PAYMENTS, booking_id)
        if any(p["status"] == PaymentStatus.CAPTURED for p in existing):
            raise HttpError(ALREADY_PAID, 409)
        if amount_paise != booking["amount_paise"]:
            raise HttpError(AMOUNT_MISMATCH, 400)
        if existing:
            return _view(existing[-1], booking)
        order = await _create_razorpay_order(razorpay, booking)
        row = await conn.fetchrow(
            INSERT_PAYMENT,
            booking_id,
            customer_id,
            order["id"],
            order["receipt"],
            order["amount"],
            order["currency"],
            reconcile_after,
        )
        await add_event(
            conn,
            OrderCreated(
                booking_id=booking_id,
                customer_id=customer_id,
                order_id=order["id"],
                amount_paise=order["amount"],
                currency=order["currency"],
            ),
            producer="order_service",
            correlation_id=correlation_id,
        )
        log.info("order created", extra=log_ctx(booking_id=booking_id))
        return _view(row, booking)


async def _create_razorpay_order(razorpay: RazorpayClient, booking: asyncpg.Record) -> dict:
    request = OrderRequest(
        amount_paise=booking["amount_paise"],
        receipt=receipt_for(booking),
        notes={"booking_id": str(booking["id"]), "customer_id": str(booking["customer_id"])},
    )
    rejected = HttpError("Payment provider rejected the order request.", 502)
    try:
        try:
            order = await _create_order(razorpay, request)
        except RazorpayRejected as exc:
            # A Razorpay that ignores unique_receipt refuses the retry of a create whose
            # answer we lost; the order it made is then found by its receipt.
            log.warning("razorpay refused order: %s", exc)
            order = await razorpay.find_order_by_receipt(request.receipt)
            if order is None:
                raise rejected from None
    except RazorpayRejected:  # e.g. the API key itself is refused
        raise rejected from None
    except RazorpayTimeout:
        raise HttpError("Payment provider timed out. Please retry.", 504) from None
    except RazorpayUnavailable:
        raise HttpError("Payment provider is unavailable. Please retry.", 503) from None
    if not _order_matches(order, request):
        log.error("razorpay returned an order that is not this booking's")
        raise HttpError("Payment provider returned an unexpected order.", 502)
    return order


async def _create_order(razorpay: RazorpayClient, request: OrderRequest) -> dict:
    try:
        return await razorpay.create_order(request)
    except RazorpayRejected as exc:
        if "unique_receipt" not in str(exc):
            raise
    # An API that does not know unique_receipt: the receipt lookup above covers retries.
    return await razorpay.create_order(replace(request, unique_receipt=False))


def _order_matches(order: dict, request: OrderRequest) -> bool:
    return (
        isinstance(order.get("id"), str)
        and order["id"].startswith("order_")
        and order.get("amount") == request.amount_paise
        and order.get("currency") == request.currency
        and order.get("receipt") == request.receipt
        and order.get("status") in ("created", "attempted")
    )


def _view(payment: asyncpg.Record, booking: asyncpg.Record) -> OrderView:
    return OrderView(
        order_id=payment["razorpay_order_id"],
        amount_paise=payment["amount_paise"],
        currency=payment["currency"],
        booking_id=booking["id"],
        customer_email=booking["customer_email"],
        customer_name=booking["customer_name"],
    )


async def payment_status(
    pool: asyncpg.Pool, booking_id: int, customer_id: int | None = None
) -> dict:
    """The seed's {status, paid, razorpay_payment_id}; `customer_id` limits it to its owner."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(PAYMENT_STATUS, booking_id, customer_id)
    if row is None:
        raise HttpError(PAYMENT_NOT_FOUND, 404)
    status = PaymentStatus(row["status"])
    public = public_status(status, row["refunded"])
    return {
        "status": public,
        "paid": public == "paid",
        "razorpay_payment_id": row["razorpay_payment_id"],
    }
