"""The ledger: one CSV row per money movement (a payment captured, a refund, a dispute's
deduction or reversal, an adjustment) with Razorpay's fee and GST and the settlement that
paid it out. PostgreSQL writes the CSV itself (COPY) and it is handed on chunk by chunk, so
a month of a million rows is never held by this process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

AUTHORIZED_DAYS = timedelta(days=6)
# A year of rows read by a slow client still ends within this; past it the query is cut.
LEDGER_TIMEOUT_SECONDS = 900.0


def _rupees(paise: str) -> str:
    """Paise as rupees: a numeric of scale 2, exact, printed with both decimals."""
    return f"({paise})::numeric * 0.01"


def _day(moment: str) -> str:
    return f"to_char({moment} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


# Our payments and refunds from their own tables (settled or not), then every settlement
# item that is neither (adjustments, disputes, a booking's second charges, entities we do
# not know). A refund names the Razorpay payment it refunded: a second charge's is not the
# booking's kept payment. Each part reads a
# range of its own index; $1 and $2 bound the days, [from, to + 1 day). A payment's item
# is dated when Razorpay created the payment, at most AUTHORIZED_DAYS before its capture
# (Razorpay refunds an authorized payment not captured by then), so the items read for the
# range's payments start that much earlier: the month's, never the whole history. Rows
# come by kind (payments, refunds, the rest), each roughly by date, unsorted: a sort of a
# month's rows would cost more than writing them.
LEDGER = f"""
SELECT {_day("at")} AS date, booking_id, order_id, payment_id, type,
       {_rupees("amount")} AS amount, {_rupees("fee")} AS fee, {_rupees("tax")} AS tax,
       {_rupees("net")} AS net, settlement_id, utr
FROM (
    SELECT p.captured_at AS at, p.booking_id, p.razorpay_order_id AS order_id,
           p.razorpay_payment_id AS payment_id, 'payment' AS type, p.amount_paise AS amount,
           i.fee_paise AS fee, i.tax_paise AS tax, p.amount_paise - i.fee_paise AS net,
           i.settlement_id, i.utr
    FROM payments p LEFT JOIN settlement_items i
         ON i.payment_ref = p.id AND i.created_at >= $1::timestamptz - $3::interval
            AND i.created_at < $2
    WHERE p.status = 'captured' AND p.captured_at >= $1 AND p.captured_at < $2
  UNION ALL
    SELECT r.processed_at, r.booking_id, p.razorpay_order_id, r.razorpay_payment_id, 'refund',
           -r.amount_paise, i.fee_paise, i.tax_paise, -r.amount_paise - COALESCE(i.fee_paise, 0),
           i.settlement_id, i.utr
    FROM refunds r JOIN payments p ON p.id = r.payment_id
    LEFT JOIN settlement_items i ON i.refund_ref = r.id
    WHERE r.status = 'processed' AND r.processed_at >= $1 AND r.processed_at < $2
  UNION ALL
    SELECT i.created_at, COALESCE(p.booking_id, (
               SELECT d.booking_id FROM duplicate_payments d
               WHERE d.razorpay_payment_id = CASE WHEN i.type = 'payment' THEN i.entity_id
                                                  ELSE i.payment_id END)), i.order_id,
           CASE WHEN i.type = 'payment' THEN i.entity_id ELSE i.payment_id END,
           CASE WHEN i.dispute_id IS NULL THEN i.type
                WHEN i.debit_paise > 0 THEN 'dispute_deduction' ELSE 'dispute_reversal' END,
           i.credit_paise - i.debit_paise + i.fee_paise, i.fee_paise, i.tax_paise,
           i.credit_paise - i.debit_paise, i.settlement_id, i.utr
    FROM settlement_items i
    LEFT JOIN payments p ON p.status = 'captured'
          AND p.razorpay_payment_id = CASE WHEN i.type = 'payment' THEN i.entity_id
                                           ELSE i.payment_id END
    WHERE i.created_at >= $1 AND i.created_at < $2
      AND i.payment_ref IS NULL AND i.refund_ref IS NULL
) movements
"""


async def write_ledger(conn: asyncpg.Connection, first: date, last: date,
                       write: Callable[[bytes], Awaitable[None]]) -> None:
    """The CSV (header first) from `first` to `last`, both included, to `write`."""
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    # One read-only snapshot for the whole file, with a deadline of its own: the pool's
    # command timeout is for queries that answer in milliseconds.
    async with conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = '{int(LEDGER_TIMEOUT_SECONDS)}s'")
        await conn.copy_from_query(LEDGER, start, end, AUTHORIZED_DAYS, output=write,
                                   format="csv", header=True, timeout=LEDGER_TIMEOUT_SECONDS)
