"""Order logic: no aiohttp objects here. Each function takes its inputs and its ports."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

import asyncpg

from shared import status_batch
from shared.coalesce import Coalescer
from shared.db import Autocommit, transaction
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
ORDER_IN_PROGRESS = "The order for this booking is being created. Please retry."
PAYMENT_AT_OLD_PRICE = "A payment at this booking's earlier price is in progress."
ACQUIRE_TIMEOUT = 10  # seconds for a pooled connection: only short transactions wait here

# SQL as constants: tests/integration/test_query_plans.py EXPLAINs each one.
BOOKING = (
    "SELECT b.*, c.name AS customer_name, c.email AS customer_email"
    " FROM bookings b JOIN customers c ON c.id = b.customer_id"
    " WHERE b.id = $1 AND b.customer_id = $2"
)
CLAIM_BOOKING = """
INSERT INTO order_claims (booking_id, claim_id, lease_until)
VALUES ($1, $2, now() + $3::interval)
ON CONFLICT (booking_id) DO UPDATE
    SET claim_id = EXCLUDED.claim_id, lease_until = EXCLUDED.lease_until, claimed_at = now()
    WHERE order_claims.lease_until < now()  -- take over only a claim whose holder died
RETURNING claim_id
"""
RELEASE_CLAIM = "DELETE FROM order_claims WHERE booking_id = $1 AND claim_id = $2"
DROP_CLAIM = "DELETE FROM order_claims WHERE booking_id = $1"
LOCK_BOOKING_STATUS = "SELECT status FROM bookings WHERE id = $1 FOR NO KEY UPDATE"
BOOKING_PAYMENTS = "SELECT * FROM payments WHERE booking_id = $1 ORDER BY created_at"
# Only an order nothing was paid on yet; a payment already authorized on it is left alone.
SUPERSEDE_ORDER = (
    "UPDATE payments SET superseded_at = now()"
    " WHERE id = $1 AND status = ANY($2::text[]) AND superseded_at IS NULL RETURNING id"
)
SUPERSEDABLE = [PaymentStatus.CREATED.value, PaymentStatus.FAILED.value]
INSERT_PAYMENT = (
    "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
    " amount_paise, currency, next_reconcile_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval)"
    " ON CONFLICT DO NOTHING RETURNING *"  # recorded already (a taken-over claim)
)
RECORDED_PAYMENT = (
    "SELECT * FROM payments WHERE booking_id = $1"
    " ORDER BY (razorpay_order_id = $2) DESC, created_at DESC LIMIT 1"
)
# Payment-status for many bookings in one round trip (see `status_reads`): per asked
# (booking, owner or NULL) in order, its payment as payment-status shows it, or NULLs.
PAYMENT_STATUSES = """
SELECT p.status, p.razorpay_payment_id, p.refunded
FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS asked(booking_id, customer_id, n)
LEFT JOIN LATERAL (
    SELECT status, razorpay_payment_id, refunded_paise >= amount_paise AS refunded
    FROM payments
    WHERE booking_id = asked.booking_id
      AND (asked.customer_id IS NULL OR customer_id = asked.customer_id)
    ORDER BY (status = 'captured') DESC, created_at DESC LIMIT 1
) p ON true
ORDER BY asked.n
"""


@dataclass(frozen=True)
class OrderView:
    order_id: str
    amount_paise: int
    currency: str
    booking_id: int
    customer_email: str
    customer_name: str


def receipt_for(booking: asyncpg.Record, superseded: int = 0) -> str:
    """Stable per booking and price (so a retried create finds its order) and unique across
    databases. The price is part of it: an order a lost create made before the booking was
    repriced is never handed back for the new price (nobody saw its id, so it is never
    paid). After `superseded` orders for earlier prices, a receipt of its own (Razorpay
    would hand back the old order for the old receipt)."""
    receipt = f"a6-bk{booking['id']}-{int(booking['created_at'].timestamp() * 1000)}"
    suffix = f"-{booking['amount_paise']}" + (f"-p{superseded}" if superseded else "")
    return receipt[:40 - len(suffix)] + suffix


async def create_order(
    pool: asyncpg.Pool,
    razorpay: RazorpayClient,
    *,
    booking_id: int,
    customer_id: int,
    amount_paise: int,
    reconcile_after: timedelta,
    correlation_id: str | None = None,
    wait_seconds: float | None = None,
) -> OrderView:
    """Three short steps; no transaction or row lock is open while Razorpay answers:
    1. claim the booking in `order_claims` (or find its order, or refuse: 404/409/400);
    2. ask Razorpay for the order (a stable receipt with `unique_receipt`, so a repeated or
       taken-over call returns the same order);
    3. record the order and its event, and drop the claim.
    A racing request for the same booking finds the claim and polls for the order; if it
    is not there within `wait_seconds`, it answers 503 and the client retries."""
    # The lease outlasts what the claimer can spend on Razorpay (up to three calls, each
    # with its backstop): only a claimer that died leaves a claim this old.
    lease = timedelta(seconds=3 * (razorpay.timeout + 2) + 5)
    claim = await _claim_or_wait(
        pool, booking_id, customer_id, amount_paise, lease,
        razorpay.timeout + 2 if wait_seconds is None else wait_seconds,
    )
    if isinstance(claim, OrderView):
        return claim
    try:
        order = await _create_razorpay_order(razorpay, claim.booking, claim.receipt)
    except BaseException:
        # Let the next request try at once (the receipt finds any order this call made).
        with contextlib.suppress(Exception):
            await asyncio.shield(_release(pool, claim))
        raise
    view = await _record(pool, claim, order, reconcile_after, correlation_id)
    if view is None:  # cancelled while Razorpay answered: the unpaid order just expires
        raise HttpError(BOOKING_NOT_FOUND, 404)
    return view


@dataclass(frozen=True)
class _Claim:
    claim_id: uuid.UUID
    booking: asyncpg.Record
    receipt: str


class _OrderExists(Exception):
    def __init__(self, view: OrderView):
        self.view = view


async def _claim_or_wait(pool, booking_id, customer_id, amount_paise, lease, wait_seconds):
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + wait_seconds, 0.05
    while True:
        try:
            claim = await _try_claim(pool, booking_id, customer_id, amount_paise, lease)
        except _OrderExists as found:
            return found.view
        if claim is not None:
            return claim
        if loop.time() >= deadline:
            log.info("order still being created by another request",
                     extra=log_ctx(booking_id=booking_id))
            raise HttpError(ORDER_IN_PROGRESS, 503, headers={"Retry-After": "2"})
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def _try_claim(pool, booking_id, customer_id, amount_paise, lease) -> _Claim | None:
    """One short transaction: the claim, or None while another request holds it. Raises
    _OrderExists / HttpError instead, which rolls back any claim it took."""
    async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn, transaction(conn):
        booking = await conn.fetchrow(BOOKING, booking_id, customer_id)
        if booking is None or booking["status"] == "cancelled":
            raise HttpError(BOOKING_NOT_FOUND, 404)
        # Claim before reading payments: the claimer that recorded an order dropped its
        # claim in the same commit, so whoever gets the claim next also sees that order.
        claim_id = await conn.fetchval(CLAIM_BOOKING, booking_id, uuid.uuid4(), lease)
        existing = await conn.fetch(BOOKING_PAYMENTS, booking_id)
        if any(p["status"] == PaymentStatus.CAPTURED for p in existing):
            raise HttpError(ALREADY_PAID, 409)
        if amount_paise != booking["amount_paise"]:
            raise HttpError(AMOUNT_MISMATCH, 400)
        open_orders = [p for p in existing if p["superseded_at"] is None]
        if open_orders and open_orders[-1]["amount_paise"] == booking["amount_paise"]:
            raise _OrderExists(_view(open_orders[-1], booking))
        if claim_id is None:
            return None
        if open_orders:  # made for an earlier price: never handed out again
            if await conn.fetchval(SUPERSEDE_ORDER, open_orders[-1]["id"], SUPERSEDABLE) is None:
                raise HttpError(PAYMENT_AT_OLD_PRICE, 409)
            log.info("order for an earlier price superseded", extra=log_ctx(booking_id=booking_id))
        # Every order of the booking is superseded now (none is captured): one receipt each
        return _Claim(claim_id, booking, receipt_for(booking, len(existing)))


async def _release(pool: asyncpg.Pool, claim: _Claim) -> None:
    async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
        await Autocommit(conn).execute(RELEASE_CLAIM, claim.booking["id"], claim.claim_id)


async def _record(pool, claim: _Claim, order: dict, reconcile_after, correlation_id):
    """The second short transaction: the order and its event, and the claim dropped. The
    same order recorded already (a taken-over claim) is found, not duplicated."""
    booking = claim.booking
    async with outbox_transaction(pool, timeout=ACQUIRE_TIMEOUT) as conn:
        # A brief lock: a cancellation that committed meanwhile is seen, one in flight waits.
        status = await conn.fetchval(LOCK_BOOKING_STATUS, booking["id"])
        await conn.execute(DROP_CLAIM, booking["id"])
        if status == "cancelled":
            return None
        row = await conn.fetchrow(
            INSERT_PAYMENT,
            booking["id"],
            booking["customer_id"],
            order["id"],
            order["receipt"],
            order["amount"],
            order["currency"],
            reconcile_after,
        )
        if row is None:
            row = await conn.fetchrow(RECORDED_PAYMENT, booking["id"], order["id"])
            return _view(row, booking)
        await add_event(
            conn,
            OrderCreated(
                booking_id=booking["id"],
                customer_id=booking["customer_id"],
                order_id=order["id"],
                amount_paise=order["amount"],
                currency=order["currency"],
            ),
            producer="order_service",
            correlation_id=correlation_id,
        )
    log.info("order created", extra=log_ctx(booking_id=booking["id"]))
    return _view(row, booking)


async def _create_razorpay_order(razorpay: RazorpayClient, booking: asyncpg.Record,
                                 receipt: str) -> dict:
    request = OrderRequest(
        amount_paise=booking["amount_paise"],
        receipt=receipt,
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


StatusKey = tuple[int, int | None]  # (booking, the customer it must belong to, or None)
StatusReads = Coalescer[StatusKey, asyncpg.Record | None]


async def read_statuses(pool: asyncpg.Pool,
                        keys: list[StatusKey]) -> list[asyncpg.Record | None]:
    """Each key's payment as payment-status shows it (None: none), in one query."""
    async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
        rows = await conn.fetch(PAYMENT_STATUSES, [booking for booking, _ in keys],
                                [customer for _, customer in keys])
    return [row if row["status"] is not None else None for row in rows]


def status_reads(pool: asyncpg.Pool) -> StatusReads:
    """payment-status reads that run at the same time share one query (shared/coalesce.py):
    under load a read costs PostgreSQL and this process a fraction of a round trip."""
    return Coalescer(functools.partial(read_statuses, pool), max_batch=status_batch.MAX_READS,
                     in_flight=status_batch.IN_FLIGHT)


def status_of(row: asyncpg.Record | None) -> dict:
    """The seed's {status, paid, razorpay_payment_id}, or 404 when there is no payment."""
    if row is None:
        raise HttpError(PAYMENT_NOT_FOUND, 404)
    public = public_status(PaymentStatus(row["status"]), row["refunded"])
    return {
        "status": public,
        "paid": public == "paid",
        "razorpay_payment_id": row["razorpay_payment_id"],
    }


async def payment_status(
    reads: StatusReads, booking_id: int, customer_id: int | None = None
) -> dict:
    """payment-status for one booking; `customer_id` limits it to its owner."""
    return status_of(await reads.get((booking_id, customer_id)))
