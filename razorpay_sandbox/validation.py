"""Request bodies checked the way Razorpay checks them, each failure naming its field."""

from __future__ import annotations

import json
from typing import Any

from razorpay_sandbox.errors import ApiError
from razorpay_sandbox.store import NewOrder, NewRefund

ORDER_FIELDS = frozenset(
    {"amount", "currency", "receipt", "notes", "payment_capture", "unique_receipt"}
)
MIN_AMOUNT = 100
MAX_RECEIPT = 40
MAX_NOTES = 15
MAX_NOTE_VALUE = 256
MAX_PAGE = 100


def parse_json_object(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    if not raw.strip() and allow_empty:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError("The request body should be a JSON object")
    return body


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_flag(body: dict[str, Any], name: str, default: bool) -> bool:
    """Razorpay takes 0/1, true/false (and their string forms) for flags."""
    value = body.get(name, default)
    if isinstance(value, str):
        value = value.strip().lower()
    if value in (True, 1, "1", "true"):
        return True
    if value in (False, 0, "0", "false"):
        return False
    raise ApiError(f"The {name} field must be true or false", field=name)


def parse_new_order(body: dict[str, Any], *, unique_receipt_supported: bool = True) -> NewOrder:
    """`unique_receipt_supported=False` plays an API that has never heard of the flag."""
    known = ORDER_FIELDS if unique_receipt_supported else ORDER_FIELDS - {"unique_receipt"}
    extra = sorted(set(body) - known)
    if extra:
        raise ApiError(f"{', '.join(extra)} is/are not required and should not be sent")
    amount = body.get("amount")
    if amount is None:
        raise ApiError("The amount field is required.", field="amount")
    if not is_int(amount):
        raise ApiError("The amount must be an integer.", field="amount")
    if amount < MIN_AMOUNT:
        raise ApiError("Order amount less than minimum amount allowed", field="amount")
    currency = body.get("currency", "INR")
    if currency != "INR":
        raise ApiError("Currency is not supported", field="currency")
    return NewOrder(
        amount=amount,
        currency=currency,
        receipt=_receipt(body.get("receipt")),
        notes=_notes(body.get("notes")),
        payment_capture=parse_flag(body, "payment_capture", True),
        unique_receipt=parse_flag(body, "unique_receipt", False),
    )


def _receipt(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError("The receipt must be a string.", field="receipt")
    if len(value) > MAX_RECEIPT:
        raise ApiError(
            f"The receipt may not be greater than {MAX_RECEIPT} characters.", field="receipt"
        )
    return value or None


def _notes(value: Any) -> dict[str, Any]:
    if value is None or value == []:  # PHP clients send [] for "no notes"
        return {}
    if not isinstance(value, dict):
        raise ApiError("The notes must be an object of key value pairs.", field="notes")
    if len(value) > MAX_NOTES:
        raise ApiError(f"Number of notes should not be more than {MAX_NOTES}", field="notes")
    for key, note in value.items():
        if not (isinstance(note, str) or is_int(note) or isinstance(note, float)):
            raise ApiError(f"The notes.{key} must be a string.", field="notes")
        if len(str(note)) > MAX_NOTE_VALUE:
            raise ApiError(
                f"The notes.{key} may not be greater than {MAX_NOTE_VALUE} characters.",
                field="notes",
            )
    return dict(value)


def parse_capture(body: dict[str, Any]) -> tuple[int, str | None]:
    amount = body.get("amount")
    if amount is None:
        raise ApiError("The amount field is required.", field="amount", step="payment_capture")
    if not is_int(amount):
        raise ApiError("The amount must be an integer.", field="amount", step="payment_capture")
    currency = body.get("currency")
    if currency is not None and not isinstance(currency, str):
        raise ApiError("The currency must be a string.", field="currency")
    return amount, currency


def parse_page(query: dict[str, str]) -> tuple[int, int]:
    """`count` (1..100, default 10) and `skip` (>= 0) as Razorpay's list endpoints take them."""
    count = query_int(query, "count", 10)
    skip = query_int(query, "skip", 0)
    if not 1 <= count <= MAX_PAGE:
        raise ApiError(f"The count must be between 1 and {MAX_PAGE}.", field="count")
    if skip < 0:
        raise ApiError("The skip must be at least 0.", field="skip")
    return count, skip


def query_int(query, name: str, default: int | None, message: str | None = None) -> int | None:
    """An integer query parameter; `message` (default: "The <name> must be an integer.")
    refuses one that is not."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(message or f"The {name} must be an integer.", field=name) from None


REFUND_FIELDS = frozenset({"amount", "speed", "notes", "receipt"})


def parse_refund(body: dict[str, Any]) -> NewRefund:
    extra = sorted(set(body) - REFUND_FIELDS)
    if extra:
        raise ApiError(f"{', '.join(extra)} is/are not required and should not be sent")
    amount = body.get("amount")
    if amount is not None and not is_int(amount):
        raise ApiError("The amount must be an integer.", field="amount")
    speed = body.get("speed", "normal")
    if speed not in ("normal", "optimum"):
        raise ApiError("Invalid speed value", field="speed")
    return NewRefund(
        amount=amount, notes=_notes(body.get("notes")), receipt=_receipt(body.get("receipt")),
        speed=speed,
    )
