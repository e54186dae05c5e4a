"""Cancelling bookings and refunding payments (the admin API and `a6pay`). No aiohttp here.

Each operation writes its rows (booking, refund, outbox event) in one transaction that holds
the booking's row lock, commits, and only then asks Razorpay (`submit_refund`): no lock or
transaction is held across the call. Lock order is always booking, then payment.
"""

from __future__ import annotations

import logging

import asyncpg

from order_service.dispute_schemas import DISPUTED
from order_service.refund_truth import catch_up_refunds
from order_service.schemas import REFUND_REFUSED
from shared.booking_state import BookingStatus, can_transition
from shared.dispute_state import OPEN_STATUSES
from shared.events import BookingCancelled
from shared.http import HttpError
from shared.logging import log_ctx
from shared.money import paise_to_rupees
from shared.outbox import add_event, outbox_transaction
from shared.razorpay_client import RazorpayClient
from shared.refund_state import RefundStatus
from shared.refunds import (
    MIN_REFUND_PAISE,
    RefundCapExceeded,
    RefundWhileDisputed,
    create_refund,
    refund_view,
    submit_refund,
)

log = logging.getLogger(__name__)

PRODUCER = "order_service"
BOOKING_NOT_FOUND = "Booking not found"
NOT_PAID = "Booking has no captured payment to refund"
NOTHING_LEFT = "Nothing left to refund for this booking"
FEE_TOO_HIGH = "cancellation_fee is more than the amount paid"
CAR_OUT = "Booking can no longer be cancelled"


async def refuse_if_disputed(conn: asyncpg.Connection, payment) -> None:
    """409 while the payment's dispute is open (the refunds table's trigger says so too)."""
    if payment is not None and await conn.fetchval(
        "SELECT true FROM disputes WHERE razorpay_payment_id = $1 AND status = ANY($2::text[])"
        " LIMIT 1", payment["razorpay_payment_id"], OPEN_STATUSES):
        raise HttpError(DISPUTED, 409)


async def cancel_booking(
    pool: asyncpg.Pool,
    razorpay: RazorpayClient,
    booking_id: int,
    *,
    reason: str | None = None,
    fee_paise: int = 0,
    correlation_id: str | None = None,
) -> dict:
    """Cancel; if paid, refund all not yet refunded minus the fee. Again: the same answer,
    unless Razorpay failed that refund: then it is written again (`_refund_again_if_failed`)."""
    await catch_up_refunds(pool, razorpay, booking_id)
    async with outbox_transaction(pool) as conn:
        booking = await lock_booking(conn, booking_id)
        status = BookingStatus(booking["status"])
        if status is not BookingStatus.CANCELLED and not can_transition(
                status, BookingStatus.CANCELLED):
            raise HttpError(f"{CAR_OUT}: the booking is {status.value}", 409)
        if booking["status"] != "cancelled":
            refund_id = await _cancel(conn, booking, reason, fee_paise, correlation_id)
        else:
            refund_id = await _refund_again_if_failed(conn, booking, correlation_id)
    if refund_id is not None:
        await submit_refund(pool, razorpay, refund_id)
    return await cancellation_view(pool, booking_id)


async def _cancel(conn, booking, reason: str | None, fee_paise: int,
                  correlation_id: str | None) -> int | None:
    """The booking's cancellation, its refund and event; the refund's id, if one is owed."""
    booking_id = booking["id"]
    payment = await _captured_payment(conn, booking_id)
    await refuse_if_disputed(conn, payment)
    if payment is not None and fee_paise > payment["amount_paise"]:
        raise HttpError(FEE_TOO_HIGH, 400)
    await conn.execute(
        "UPDATE bookings SET status = 'cancelled', cancelled_at = now(),"
        " cancellation_reason = $2, cancellation_fee_paise = $3 WHERE id = $1",
        booking_id, (reason or "")[:500] or None, fee_paise)
    refund = None
    if payment is not None:
        refund = await _cancellation_refund(conn, payment, fee_paise, reason, correlation_id)
    await add_event(conn, BookingCancelled(
        booking_id=booking_id, customer_id=booking["customer_id"],
        paid=payment is not None, refund_paise=refund["amount_paise"] if refund else 0,
        cancellation_fee_paise=fee_paise, reason=reason,
    ), PRODUCER, correlation_id)
    log.info("booking cancelled", extra=log_ctx(booking_id=booking_id))
    return refund["id"] if refund else None


async def _refund_again_if_failed(conn, booking, correlation_id: str | None) -> int | None:
    """Cancelling again after Razorpay failed the cancellation's refund: the booking still
    owes it, so a new refund is written for what the cancellation owes now. While one is
    requested, pending or processed, nothing is written: cancelling stays idempotent."""
    payment = await _captured_payment(conn, booking["id"])
    if payment is None or await conn.fetchval(
            "SELECT status FROM refunds WHERE payment_id = $1 AND cause = 'cancellation'"
            " ORDER BY id DESC LIMIT 1", payment["id"]) != RefundStatus.FAILED:
        return None
    await refuse_if_disputed(conn, payment)
    refund = await _cancellation_refund(
        conn, payment, booking["cancellation_fee_paise"] or 0, booking["cancellation_reason"],
        correlation_id)
    if refund is not None:
        log.info("cancellation refund written again after a failed one",
                 extra=log_ctx(booking_id=booking["id"], refund_id=refund["id"]))
    return refund["id"] if refund else None


async def _cancellation_refund(conn, payment, fee_paise: int, reason: str | None,
                               correlation_id: str | None):
    """The refund of all not yet refunded (nor charged back) minus the fee, or None when
    that is below Razorpay's minimum (the fee keeps it)."""
    refund_paise = max(_remaining(payment) - fee_paise, 0)
    if refund_paise < MIN_REFUND_PAISE:
        return None
    try:
        return await create_refund(
            conn, payment, refund_paise, cause="cancellation", reason=reason,
            producer=PRODUCER, correlation_id=correlation_id)
    except RefundWhileDisputed:  # opened since we looked: the database refuses
        raise HttpError(DISPUTED, 409) from None


async def cancellation_view(pool: asyncpg.Pool, booking_id: int) -> dict:
    async with pool.acquire() as conn:
        booking = await conn.fetchrow("SELECT * FROM bookings WHERE id = $1", booking_id)
        paid = await _captured_payment(conn, booking_id, lock=False) is not None
        refund = await conn.fetchrow(
            "SELECT * FROM refunds WHERE booking_id = $1 AND cause = 'cancellation'"
            " ORDER BY id DESC LIMIT 1", booking_id)  # the latest: one may follow a failed one
    return {
        "message": "Booking cancelled",
        "booking_id": booking_id,
        "status": booking["status"],
        "paid": paid,
        "cancellation_fee": paise_to_rupees(booking["cancellation_fee_paise"] or 0),
        "reason": booking["cancellation_reason"],
        "cancelled_at": booking["cancelled_at"].isoformat(),
        "refund": refund_view(refund) if refund is not None else None,
    }


async def refund_booking(
    pool: asyncpg.Pool,
    razorpay: RazorpayClient,
    booking_id: int,
    *,
    amount_paise: int | None = None,
    reason: str | None = None,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
) -> dict:
    """Refund part or (by default) all of what remains of the booking's captured payment."""
    await catch_up_refunds(pool, razorpay, booking_id)
    async with outbox_transaction(pool) as conn:
        existing = idempotency_key and await conn.fetchrow(
            "SELECT * FROM refunds WHERE idempotency_key = $1", idempotency_key)
        if not existing:
            booking = await lock_booking(conn, booking_id)
            payment = await _captured_payment(conn, booking_id)
            if payment is None:
                raise HttpError(NOT_PAID, 409)
            await refuse_if_disputed(conn, payment)
            remaining = _remaining(payment)
            if remaining <= 0:
                raise HttpError(NOTHING_LEFT, 409)
            amount = amount_paise
            if amount is None:  # all left: a cancelled booking's fee stays ours
                amount = remaining - _fee_kept(booking)
                if amount <= 0:
                    raise HttpError(NOTHING_LEFT, 409)
            if amount > remaining:
                raise HttpError(
                    f"Refund amount is more than remains to refund ({paise_to_rupees(remaining)})",
                    400)
            if amount < MIN_REFUND_PAISE:
                raise HttpError("Refund amount must be at least 1", 400)
            try:
                existing = await create_refund(
                    conn, payment, amount, cause="admin", reason=reason,
                    idempotency_key=idempotency_key, producer=PRODUCER,
                    correlation_id=correlation_id)
            except RefundCapExceeded:  # cannot happen under the lock; the database agrees
                raise HttpError(NOTHING_LEFT, 409) from None
            except RefundWhileDisputed:
                raise HttpError(DISPUTED, 409) from None
    row = await submit_refund(pool, razorpay, existing["id"]) or existing
    if row["status"] == RefundStatus.FAILED:
        # No money moved: a 2xx, kept as this key's answer, would tell the caller it did.
        raise HttpError(REFUND_REFUSED, 502)
    remaining = await pool.fetchval(
        "SELECT COALESCE(max(amount_paise - refunded_paise"
        " - (SELECT paise FROM charged_back(razorpay_payment_id))), 0) FROM payments"
        " WHERE booking_id = $1 AND status = 'captured'", booking_id)
    return {"message": "Refund initiated", "refund": refund_view(row),
            "remaining": paise_to_rupees(remaining)}


async def lock_booking(conn: asyncpg.Connection, booking_id: int) -> asyncpg.Record:
    booking = await conn.fetchrow("SELECT * FROM bookings WHERE id = $1 FOR UPDATE", booking_id)
    if booking is None:
        raise HttpError(BOOKING_NOT_FOUND, 404)
    return booking


async def _captured_payment(conn, booking_id: int, *, lock: bool = True):
    return await conn.fetchrow(
        "SELECT *, (SELECT paise FROM charged_back(razorpay_payment_id)) AS charged_back_paise"
        " FROM payments"
        " WHERE booking_id = $1 AND status = 'captured'"
        + (" FOR UPDATE" if lock else ""), booking_id)


def _fee_kept(booking) -> int:
    """What a cancellation keeps of the payment: its fee, once the booking is cancelled."""
    if booking["status"] != BookingStatus.CANCELLED:
        return 0
    return booking["cancellation_fee_paise"] or 0


def _remaining(payment) -> int:
    """What is left to refund: lost disputes (chargebacks) already returned their part."""
    return max(payment["amount_paise"] - payment["refunded_paise"]
               - payment["charged_back_paise"], 0)
