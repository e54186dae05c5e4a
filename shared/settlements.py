"""Settlements in the database: a settlement recorded (from its webhook or the poll), a page
of recon items recorded against our payments and refunds, a settlement's verdict through
the state machine in shared/settlement_state.py. Razorpay's vocabulary stops here: an item
whose type or figures we cannot read never reaches the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.db import transaction
from shared.money import whole_number
from shared.settlement_state import ItemType, SettlementStatus, allowed_sources, verdict

SETTLEMENT_PROCESSED = "settlement.processed"


@dataclass(frozen=True)
class Settlement:
    settlement_id: str
    utr: str | None
    amount_paise: int
    fees_paise: int
    tax_paise: int
    settled_at: datetime


def _text(value: Any, limit: int = 64) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def settlement_from_entity(entity: Any) -> Settlement | None:
    """A processed settlement as Razorpay shows it; None if it is not one we can record."""
    if not isinstance(entity, dict) or entity.get("status") != "processed":
        return None
    settlement_id, amount = _text(entity.get("id")), whole_number(entity.get("amount"))
    created_at = whole_number(entity.get("created_at"))
    if settlement_id is None or amount is None or created_at is None:
        return None
    return Settlement(settlement_id, _text(entity.get("utr")), amount,
                      whole_number(entity.get("fees")) or 0, whole_number(entity.get("tax")) or 0,
                      datetime.fromtimestamp(created_at, UTC))


def settlement_of_event(payload: dict) -> Settlement | None:
    """The settlement a `settlement.processed` webhook reports."""
    try:
        entity = payload["payload"]["settlement"]["entity"]
    except (KeyError, TypeError):
        return None
    return settlement_from_entity(entity)


INSERT_SETTLEMENT = (
    "INSERT INTO settlements (settlement_id, utr, amount_paise, fees_paise, tax_paise,"
    " settled_at, source) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (settlement_id) DO NOTHING RETURNING true"
)


async def record_settlement(conn, settlement: Settlement, source: str) -> bool:
    """True if it is new; a settlement seen before (redelivered, or polled) changes nothing."""
    return bool(await conn.fetchval(
        INSERT_SETTLEMENT, settlement.settlement_id, settlement.utr, settlement.amount_paise,
        settlement.fees_paise, settlement.tax_paise, settlement.settled_at, source))


# A page of recon items as columns, in this order; `ItemColumns.add` fills them.
_COLUMNS = ("settlement_id", "entity_id", "type", "credit", "debit", "amount", "fee", "tax",
            "utr", "order_id", "payment_id", "dispute_id", "method", "created_at",
            "settled_at")
_TYPES = ("text", "text", "text", "bigint", "bigint", "bigint", "bigint", "bigint", "text",
          "text", "text", "text", "text", "bigint", "bigint")
_TYPE_NAMES = frozenset(t.value for t in ItemType)
_MONEY = ("credit", "debit", "amount")

# Each item is linked to our payment or refund through the unique indexes on Razorpay's
# ids (one probe per item: LATERAL … LIMIT 1 keeps the planner from hashing the whole
# payments table for a page); one we do not know is recorded with no link. A recorded
# item is never written again.
INSERT_ITEMS = f"""
INSERT INTO settlement_items (settlement_id, entity_id, type, credit_paise, debit_paise,
    amount_paise, fee_paise, tax_paise, utr, order_id, payment_id, dispute_id, method,
    created_at, settled_at, payment_ref, refund_ref)
SELECT i.settlement_id, i.entity_id, i.type, i.credit, i.debit, i.amount, i.fee, i.tax,
       i.utr, i.order_id, i.payment_id, i.dispute_id, i.method, to_timestamp(i.created_at),
       to_timestamp(i.settled_at), p.id, r.id
FROM unnest({", ".join(f"${n}::{t}[]" for n, t in enumerate(_TYPES, 1))})
     AS i({", ".join(_COLUMNS)})
LEFT JOIN LATERAL (
    SELECT id FROM payments
    WHERE i.type = 'payment' AND status = 'captured' AND razorpay_payment_id = i.entity_id
    LIMIT 1) p ON true
LEFT JOIN LATERAL (
    SELECT id FROM refunds
    WHERE i.type = 'refund' AND razorpay_refund_id = i.entity_id
    LIMIT 1) r ON true
ON CONFLICT (settlement_id, entity_id) DO NOTHING
"""


class ItemColumns:
    """Recon items turned into the columns INSERT_ITEMS takes; unreadable ones counted."""

    def __init__(self) -> None:
        self.columns: tuple[list, ...] = tuple([] for _ in _COLUMNS)
        self.unreadable = 0

    def __len__(self) -> int:
        return len(self.columns[0])

    def add(self, item: Any) -> None:
        row = self._row(item) if isinstance(item, dict) else None
        if row is None:
            self.unreadable += 1
            return
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)

    @staticmethod
    def _row(item: dict) -> tuple | None:
        settlement_id, entity_id = _text(item.get("settlement_id")), _text(item.get("entity_id"))
        money = [whole_number(item.get(name)) for name in _MONEY]
        created_at, settled_at = (whole_number(item.get(k)) for k in ("created_at", "settled_at"))
        if (settlement_id is None or entity_id is None or item.get("type") not in _TYPE_NAMES
                or None in money or created_at is None or settled_at is None):
            return None
        credit, debit, amount = money
        return (settlement_id, entity_id, item["type"], credit, debit, amount,
                whole_number(item.get("fee")) or 0, whole_number(item.get("tax")) or 0,
                _text(item.get("settlement_utr")), _text(item.get("order_id")),
                _text(item.get("payment_id")), _text(item.get("dispute_id")),
                _text(item.get("method"), 32), created_at, settled_at)


async def record_items(conn, items: ItemColumns) -> None:
    if not len(items):
        return
    async with transaction(conn):
        # A page lost in a crash is fetched again (the settlement is still pending), and
        # the verdict's own commit flushes every page before it: no reason to wait for
        # each page's WAL flush.
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(INSERT_ITEMS, *items.columns)


TOTALS = (
    "SELECT count(*) AS items, COALESCE(sum(credit_paise - debit_paise), 0) AS net,"
    " COALESCE(sum(fee_paise), 0) AS fees, COALESCE(sum(tax_paise), 0) AS tax"
    " FROM settlement_items WHERE settlement_id = $1"
)
# The verdict, forward-only; a flagged settlement is judged again (its figures follow its
# items) and looked at once a day while it is younger than RECHECK_FOR.
APPLY_VERDICT = """
WITH old AS (SELECT status FROM settlements WHERE settlement_id = $1 FOR UPDATE)
UPDATE settlements s SET status = $2, items = $3, difference_paise = $4,
    item_fees_paise = $6, item_tax_paise = $7, reconciled_at = now(),
    next_check_at = CASE WHEN $2 = 'flagged' AND s.settled_at > now() - $8::interval
                         THEN now() + $9::interval END
FROM old
WHERE s.settlement_id = $1
  AND (old.status = ANY($5::text[]) OR (old.status = 'flagged' AND $2 = 'flagged'))
RETURNING old.status AS from_status
"""
RECHECK_FOR = timedelta(days=7)
RECHECK_EVERY = timedelta(days=1)
# What a settlement cost: its items' fees and GST once judged (the entity says 0 for a
# normal settlement), the entity's until then.
FEES = "COALESCE(item_fees_paise, fees_paise)"
TAX = "COALESCE(item_tax_paise, tax_paise)"


@dataclass(frozen=True)
class Verdict:
    settlement_id: str
    status: SettlementStatus | None  # None: no items recorded yet, still pending
    items: int
    difference_paise: int | None
    changed: bool


async def judge(conn, settlement_id: str) -> Verdict:
    """Matched or flagged, from the items recorded for it (forward-only: a matched one
    stays matched); a settlement with no item yet stays pending. `changed`: its status
    moved."""
    totals = await conn.fetchrow(TOTALS, settlement_id)
    if not totals["items"]:
        return Verdict(settlement_id, None, 0, None, False)
    amount = await conn.fetchval(
        "SELECT amount_paise FROM settlements WHERE settlement_id = $1", settlement_id)
    if amount is None:  # items of a settlement we have not been told about yet
        return Verdict(settlement_id, None, totals["items"], None, False)
    difference = totals["net"] - amount
    target = verdict(difference)
    before = await conn.fetchval(APPLY_VERDICT, settlement_id, target.value, totals["items"],
                                 difference, allowed_sources(target), totals["fees"],
                                 totals["tax"], RECHECK_FOR, RECHECK_EVERY)
    return Verdict(settlement_id, target, totals["items"], difference,
                   before is not None and before != target)
