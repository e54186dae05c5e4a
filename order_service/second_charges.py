"""An operator refunds what remains of a booking's second charges (`a6pay refund BOOKING
--second-charges`): after the automatic refund of one failed at Razorpay, or once a dispute
that held it back was won. The booking's kept payment is left alone; that is `refund`'s.

Same rules as every refund (order_service/cancellations.py): the rows are written under the
booking's lock in one transaction, Razorpay is asked after the commit; what remains of a
charge is its amount less its refunds and chargebacks.
"""

from __future__ import annotations

import asyncpg

from order_service.cancellations import NOTHING_LEFT, PRODUCER, lock_booking
from order_service.dispute_schemas import DISPUTED
from order_service.refund_truth import catch_up_refunds
from shared.http import HttpError
from shared.outbox import outbox_transaction
from shared.razorpay_client import RazorpayClient
from shared.refunds import (
    MIN_REFUND_PAISE,
    RefundedPayment,
    RefundWhileDisputed,
    create_refund,
    refund_view,
    submit_refund,
)

_SECOND_CHARGES = """
SELECT d.*, d.amount_paise - d.refunded_paise
           - (SELECT paise FROM charged_back(d.razorpay_payment_id)) AS remaining
FROM duplicate_payments d WHERE d.booking_id = $1 ORDER BY d.id FOR UPDATE
"""


async def refund_second_charges(pool: asyncpg.Pool, razorpay: RazorpayClient, booking_id: int,
                                correlation_id: str | None = None) -> dict:
    await catch_up_refunds(pool, razorpay, booking_id)
    written = []
    async with outbox_transaction(pool) as conn:
        await lock_booking(conn, booking_id)
        for charge in await conn.fetch(_SECOND_CHARGES, booking_id):
            if charge["remaining"] < MIN_REFUND_PAISE:
                continue
            order = await conn.fetchrow("SELECT * FROM payments WHERE id = $1",
                                        charge["payment_id"])
            try:
                refund = await create_refund(
                    conn, order, charge["remaining"], cause="duplicate_payment",
                    reason="charged twice: refunded again by an operator", producer=PRODUCER,
                    correlation_id=correlation_id,
                    refunded=RefundedPayment(razorpay_payment_id=charge["razorpay_payment_id"],
                                             duplicate_payment_id=charge["id"]))
            except RefundWhileDisputed:
                raise HttpError(DISPUTED, 409) from None
            except asyncpg.UniqueViolationError:
                continue  # its refund is still under way
            written.append(refund["id"])
    if not written:
        raise HttpError(NOTHING_LEFT, 409)
    rows = [await submit_refund(pool, razorpay, refund_id) for refund_id in written]
    return {"message": "Refund initiated",
            "refunds": [refund_view(row) for row in rows if row is not None]}
