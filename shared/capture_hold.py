"""CAPTURE_ON_VERIFY: an authorized payment the booking would not keep is not captured: its
booking is cancelled, or its order was made for an earlier price of the booking (superseded).

Captured, it would be refunded at once and the gateway's fee lost; left authorized,
Razorpay releases the hold on the customer's money by itself. The reason is written on the
payment's row (`capture_withheld`), so reconciliation and an operator see why it stays
authorized. A cancellation that lands after this check is still caught after the capture:
the capture is then refunded in full (shared/payments.py).
"""

from __future__ import annotations

import logging

import asyncpg

from shared.db import Autocommit

log = logging.getLogger(__name__)

BOOKING_CANCELLED = "booking_cancelled"
ORDER_SUPERSEDED = "order_superseded"

WITHHOLD = """
UPDATE payments p SET capture_withheld = CASE WHEN b.status = 'cancelled' THEN $2 ELSE $3 END
FROM bookings b
WHERE p.razorpay_order_id = $1 AND b.id = p.booking_id
  AND (b.status = 'cancelled' OR p.superseded_at IS NOT NULL)
RETURNING p.capture_withheld
"""


async def capture_withheld(pool: asyncpg.Pool, order_id: str) -> str | None:
    """Why not to capture a payment on the order (and the reason recorded), or None."""
    async with pool.acquire() as conn:
        reason = await Autocommit(conn).fetchval(WITHHOLD, order_id, BOOKING_CANCELLED,
                                                 ORDER_SUPERSEDED)
    if reason is not None:
        log.warning("authorized payment left uncaptured: %s", reason)
    return reason
