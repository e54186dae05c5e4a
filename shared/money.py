"""Rupees on the wire (JSON number, at most 2 decimals), integer paise everywhere inside."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_PAISE = 10_000_000_000  # ₹10 crore: far above any rental, far below overflow


class AmountError(ValueError):
    pass


def rupees_to_paise(value: object) -> int:
    """Exact conversion; refuses bools, strings, NaN, more than 2 decimals, <= 0, absurd sizes."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise AmountError("amount must be a number")
    try:
        # str() of a float is its shortest repr, so 1500.1 stays 1500.1, not 1500.0999…
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise AmountError("amount must be a number") from exc
    if not amount.is_finite():
        raise AmountError("amount must be a finite number")
    if amount <= 0:
        raise AmountError("amount must be greater than zero")
    if amount * 100 > MAX_PAISE:
        raise AmountError("amount is too large")
    paise = amount * 100
    if paise != paise.to_integral_value():
        raise AmountError("amount must have at most 2 decimal places")
    return int(paise)


def paise_to_rupees(paise: int) -> float:
    """For JSON output only: 150000 -> 1500.0."""
    return float(Decimal(paise) / 100)


def whole_number(value: object) -> int | None:
    """An integer as Razorpay's JSON gives one (paise, unix seconds), never a bool; else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
