"""CAPTURE_ON_VERIFY: an authorized payment whose booking is cancelled is not captured.

Captured, it would be refunded at once and the gateway's fee lost; left authorized,
Razorpay releases the hold on the customer's money by itself. The reason is written on the
payment's row (`capture_withheld`), so reconciliation and an operator see why it stays
authorized. A cancellation that lands after this check is still caught after the capture:
the capture is then refunded in full (shared/payments.py).
"""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger(__name__)

BOOKING_CANCELLED = "booking_cancelled"

WITHHOLD_IF_CANCELLED = """
UPDATE payments p SET capture_withheld = $2
FROM bookings b
WHERE p.razorpay_order_id = $1 AND b.id = p.booking_id AND b.status = 'cancelled'
RETURNING p.id
"""


async def capture_withheld(pool: asyncpg.Pool, order_id: str) -> bool:
    """True (and the reason recorded) when the order's booking is cancelled: do not capture."""
    if await pool.fetchval(WITHHOLD_IF_CANCELLED, order_id, BOOKING_CANCELLED) is None:
        return False
    log.warning("authorized payment of a cancelled booking left uncaptured")
    return True
