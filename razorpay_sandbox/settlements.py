"""The sandbox's settlements: what is captured or refunded and not settled yet is paid out
net of the fee and its GST, as Razorpay does, and served as its recon items. Pure: no I/O.

A settlement's items are a sequence: a list for the ones made from the store, or a
`SyntheticItems` computed on demand for the benchmark's month of a million payments (held
as a few integers, never as a million dicts)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from razorpay_sandbox.entities import PaymentStatus, RefundStatus, new_id
from razorpay_sandbox.errors import not_found
from razorpay_sandbox.store import Store


@dataclass(frozen=True)
class Fees:
    basis_points: int = 200  # 2%
    gst_percent: int = 18

    def of(self, amount: int) -> tuple[int, int]:
        """(fee with GST, the GST in it), in paise: Razorpay's `fee` and `tax`."""
        base = (amount * self.basis_points + 5_000) // 10_000
        tax = (base * self.gst_percent + 50) // 100
        return base + tax, tax


@dataclass(frozen=True)
class Adjustment:
    """Money moved outside a payment or refund: a dispute lost (negative) or won back."""

    amount: int  # signed paise: credit when positive
    dispute_id: str | None = None
    payment_id: str | None = None
    description: str | None = None


def recon_item(*, entity_id: str, type_: str, credit: int, debit: int, amount: int, fee: int,
               tax: int, created_at: int, payment_id: str | None = None,
               order_id: str | None = None, order_receipt: str | None = None,
               dispute_id: str | None = None, method: str | None = None,
               description: str | None = None) -> dict[str, Any]:
    """A recon item as `GET /v1/settlements/recon/combined` shows it, settlement fields
    filled in by `Settlement.item`."""
    return {
        "entity_id": entity_id, "type": type_, "debit": debit, "credit": credit,
        "amount": amount, "currency": "INR", "fee": fee, "tax": tax, "on_hold": False,
        "settled": True, "created_at": created_at, "posted_at": None, "credit_type": "default",
        "description": description, "notes": None, "payment_id": payment_id,
        "order_id": order_id, "order_receipt": order_receipt, "method": method,
        "card_network": "Visa" if method == "card" else None, "card_issuer": None,
        "card_type": "credit" if method == "card" else None, "dispute_id": dispute_id,
    }


class SyntheticItems(Sequence):
    """`count` captured payments of `amount` each, ids `pay_<prefix><index:09d>` from
    `first` on: the benchmark's history, generated on demand."""

    def __init__(self, prefix: str, first: int, count: int, amount: int, created_at: int,
                 fees: Fees):
        self.prefix, self.first, self.count = prefix, first, count
        self.amount, self.created_at = amount, created_at
        self.fee, self.tax = fees.of(amount)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._item(i) for i in range(*index.indices(self.count))]
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self._item(index)

    def _item(self, index: int) -> dict[str, Any]:
        n = self.first + index
        return recon_item(
            entity_id=synthetic_payment_id(self.prefix, n), type_="payment",
            credit=self.amount - self.fee, debit=0, amount=self.amount, fee=self.fee,
            tax=self.tax, created_at=self.created_at, order_id=f"order_{self.prefix}{n:09d}",
            method="card")

    def net(self) -> int:
        return self.count * (self.amount - self.fee)


def synthetic_payment_id(prefix: str, n: int) -> str:
    return f"pay_{prefix}{n:09d}"


@dataclass
class Settlement:
    id: str
    utr: str
    created_at: int
    items: Sequence[dict[str, Any]]
    amount: int
    fees: int
    tax: int
    status: str = "processed"

    def entity(self) -> dict[str, Any]:
        return {"id": self.id, "entity": "settlement", "amount": self.amount,
                "status": self.status, "fees": self.fees, "tax": self.tax, "utr": self.utr,
                "created_at": self.created_at}

    def item(self, index: int) -> dict[str, Any]:
        return {**self.items[index], "settled_at": self.created_at, "settlement_id": self.id,
                "settlement_utr": self.utr}

    def day(self, offset: timedelta = timedelta(0)) -> tuple[int, int, int]:
        """Its date on a clock `offset` east of UTC."""
        moment = datetime.fromtimestamp(self.created_at, UTC) + offset
        return moment.year, moment.month, moment.day


@dataclass
class SettlementBook:
    """Every settlement made, and which payments and refunds are settled already."""

    store: Store
    fees: Fees = field(default_factory=Fees)
    recon_offset: timedelta = timedelta(0)  # the recon API's days, on this clock
    settlements: dict[str, Settlement] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)

    def reset(self) -> None:
        self.settlements.clear()
        self.settled.clear()

    def settle(self, *, short_by: int = 0, adjustments: Sequence[Adjustment] = (),
               at: int | None = None) -> Settlement | None:
        """One settlement of all that is due; None when there is nothing to settle."""
        items = [*self._payment_items(), *self._refund_items(),
                 *(self._adjustment_item(a) for a in adjustments)]
        if not items:
            return None
        for item in items:
            self.settled.add(item["entity_id"])
        net = sum(i["credit"] - i["debit"] for i in items)
        return self._add(items, net - short_by, at)

    def settle_synthetic(self, items: SyntheticItems, at: int) -> Settlement:
        return self._add(items, items.net(), at)

    def settlement(self, settlement_id: str) -> Settlement:
        found = self.settlements.get(settlement_id)
        if found is None:
            raise not_found()
        return found

    def newest_first(self, since: int | None, until: int | None) -> list[Settlement]:
        chosen = [s for s in self.settlements.values()
                  if (since is None or s.created_at >= since)
                  and (until is None or s.created_at <= until)]
        return sorted(chosen, key=lambda s: s.created_at, reverse=True)

    def recon(self, year: int, month: int, day: int | None, skip: int,
              count: int) -> list[dict[str, Any]]:
        """The items settled that day (or month), oldest settlement first, one page."""
        page: list[dict[str, Any]] = []
        for settlement in self._settled_in(year, month, day):
            size = len(settlement.items)
            if skip >= size:
                skip -= size
                continue
            end = min(size, skip + count - len(page))
            page.extend(settlement.item(i) for i in range(skip, end))
            skip = 0
            if len(page) == count:
                break
        return page

    def _settled_in(self, year: int, month: int, day: int | None) -> Iterator[Settlement]:
        for settlement in sorted(self.settlements.values(), key=lambda s: s.created_at):
            y, m, d = settlement.day(self.recon_offset)
            if (y, m) == (year, month) and (day is None or d == day):
                yield settlement

    def _add(self, items: Sequence[dict[str, Any]], amount: int, at: int | None) -> Settlement:
        # A normal settlement, as Razorpay's: its own fees and tax are 0, the fee and its GST
        # are on each payment's item.
        settlement = Settlement(id=new_id("setl_"), utr=new_id("UTR").upper(),
                                created_at=self.store.now() if at is None else at,
                                items=items, amount=amount, fees=0, tax=0)
        self.settlements[settlement.id] = settlement
        return settlement

    def _payment_items(self) -> Iterator[dict[str, Any]]:
        for payment in self.store.payments.values():
            settled_status = payment.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED)
            if not settled_status or payment.id in self.settled:
                continue
            fee, tax = self.fees.of(payment.amount)
            order = self.store.orders[payment.order_id]
            yield recon_item(
                entity_id=payment.id, type_="payment", credit=payment.amount - fee, debit=0,
                amount=payment.amount, fee=fee, tax=tax, created_at=payment.created_at,
                order_id=order.id, order_receipt=order.receipt, method="card")

    def _refund_items(self) -> Iterator[dict[str, Any]]:
        for refund in self.store.refunds.values():
            if refund.status is not RefundStatus.PROCESSED or refund.id in self.settled:
                continue
            payment = self.store.payments[refund.payment_id]
            yield recon_item(
                entity_id=refund.id, type_="refund", credit=0, debit=refund.amount,
                amount=refund.amount, fee=0, tax=0, created_at=refund.created_at,
                payment_id=payment.id, order_id=payment.order_id, method="card")

    def _adjustment_item(self, adjustment: Adjustment) -> dict[str, Any]:
        order_id = None
        if adjustment.payment_id is not None:
            order_id = self.store.payment(adjustment.payment_id).order_id
        return recon_item(
            entity_id=new_id("adj_"), type_="adjustment", credit=max(adjustment.amount, 0),
            debit=max(-adjustment.amount, 0), amount=abs(adjustment.amount), fee=0, tax=0,
            created_at=self.store.now(), payment_id=adjustment.payment_id, order_id=order_id,
            dispute_id=adjustment.dispute_id, description=adjustment.description)
