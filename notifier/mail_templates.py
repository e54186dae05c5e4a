"""What each mail says: pure functions from (kind, booking, details) to subject, text, HTML.

`booking` carries id, customer_name, car_name, start_date, end_date, amount_paise.
`details` is the outbox row's jsonb, written by whoever enqueued the mail. Keys read here
(all optional; amounts in paise): `amount_paise` (the payment or refund amount),
`reason`, `cancellation_fee_paise`, `refund_amount_paise` (what a cancellation refunds).
No payment, order or refund id ever goes into a mail.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from decimal import Decimal

PASS_LABELS = {"collection": "Collection pass", "return": "Return pass"}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str  # passes are referenced as <img src="cid:{pass_cid(kind)}">


def rupees(paise: int) -> str:
    return f"₹{Decimal(paise) / 100:,.2f}"


def dates(booking) -> str:
    return f"{booking['start_date']:%d %b %Y} to {booking['end_date']:%d %b %Y}"


def pass_cid(kind: str) -> str:
    return f"{kind}-pass@a6pay"


# Kinds mailed to the operators (OPS_EMAIL), never to the customer
OPS_KINDS = frozenset({"dispute_opened"})
OPS_NAME = "A6 Cars operations"


def addressee(kind: str, booking) -> str:
    """Who the mail is written to: the customer, or the operators for OPS_KINDS."""
    return OPS_NAME if kind in OPS_KINDS else booking["customer_name"]


def render(kind: str, booking, details: dict, pass_kinds: tuple[str, ...] = ()) -> Rendered:
    """The mail for one outbox row; `pass_kinds` are the passes attached (confirmation)."""
    subject, paragraphs = WORDING[kind](booking, details)
    trip = f"{booking['car_name']}, {dates(booking)}"
    greeting = f"Hi {addressee(kind, booking)},"
    text_parts = [greeting, *paragraphs, f"Booking #{booking['id']}: {trip}."]
    html_parts = [f"<p>{_h(p)}</p>" for p in [greeting, *paragraphs]]
    html_parts.append(f"<p><b>Booking #{booking['id']}</b>: {_h(trip)}.</p>")
    if pass_kinds:
        text_parts.append(
            "Your passes are attached as images: "
            + " and ".join(f"{PASS_LABELS[k].lower()} ({k}-pass.png)" for k in pass_kinds)
            + ". Show the collection pass when you pick the car up and the return pass"
            " when you bring it back."
        )
        for k in pass_kinds:
            html_parts.append(
                f"<h3>{PASS_LABELS[k]}</h3>"
                f'<p><img src="cid:{pass_cid(k)}" alt="{PASS_LABELS[k]} QR code"'
                ' width="328" height="328"></p>'
            )
    text_parts.append("A6 Cars")
    body = "\n\n".join(text_parts) + "\n"
    page = (
        '<!doctype html><html><body style="font-family: sans-serif">'
        + "".join(html_parts)
        + "<p>A6 Cars</p></body></html>"
    )
    return Rendered(subject=subject, text=body, html=page)


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _amount(booking, details: dict) -> str:
    paise = details.get("amount_paise")
    if isinstance(paise, int) and not isinstance(paise, bool) and paise > 0:
        return rupees(paise)
    return rupees(booking["amount_paise"])


def _reason(details: dict) -> str:
    reason = details.get("reason")
    return f" Reason: {reason}." if isinstance(reason, str) and reason.strip() else ""


def _confirmed(b, d):
    return (f"Booking #{b['id']} confirmed: {b['car_name']}", [
        f"Your payment of {_amount(b, d)} for {b['car_name']} ({dates(b)}) is confirmed.",
    ])


def _failed(b, d):
    return (f"Payment for booking #{b['id']} did not go through", [
        f"Your payment of {rupees(b['amount_paise'])} for {b['car_name']} ({dates(b)}) was"
        f" not completed.{_reason(d)}",
        "If any amount was debited, it is returned automatically (or, if your bank confirms"
        " the payment late, we confirm your booking). Your booking is still reserved and you"
        " can pay again.",
    ])


def _cancelled(b, d):
    lines = [f"Your booking of {b['car_name']} ({dates(b)}) is cancelled.{_reason(d)}"]
    fee = d.get("cancellation_fee_paise")
    if isinstance(fee, int) and fee > 0:
        lines.append(f"A cancellation fee of {rupees(fee)} applies.")
    refund = d.get("refund_amount_paise")
    if isinstance(refund, int) and refund > 0:
        lines.append(f"We are refunding {rupees(refund)} to your original payment method;"
                     " we will write again when the refund is processed.")
    lines.append("Your collection and return passes are no longer valid.")
    return f"Booking #{b['id']} cancelled", lines


def _refund_initiated(b, d):
    return (f"Refund of {_amount(b, d)} started for booking #{b['id']}", [
        f"We have started a refund of {_amount(b, d)} for your booking of {b['car_name']}"
        f" ({dates(b)}).{_reason(d)}",
        "Banks usually credit it within 5-7 working days; we will write again when it is"
        " processed.",
    ])


def _refund_processed(b, d):
    return (f"Refund of {_amount(b, d)} processed for booking #{b['id']}", [
        f"Your refund of {_amount(b, d)} for {b['car_name']} ({dates(b)}) has been processed"
        " and sent to your original payment method.",
    ])


def _refund_failed(b, d):
    return (f"Refund for booking #{b['id']} needs our attention", [
        f"Your refund of {_amount(b, d)} for {b['car_name']} ({dates(b)}) could not be"
        f" completed.{_reason(d)}",
        "Our team has been alerted and will make sure the money reaches you; no action is"
        " needed from you.",
    ])


def _duplicate_payment_refund(b, d):
    return (f"You were charged twice for booking #{b['id']}: refund started", [
        f"Your booking of {b['car_name']} ({dates(b)}) was paid twice. It stays confirmed with"
        " the first payment.",
        f"The second payment of {_amount(b, d)} is on its way back to your original payment"
        " method; banks usually credit it within 5-7 working days.",
    ])


def _old_price_payment_refund(b, d):
    return (f"Payment for an earlier price of booking #{b['id']}: refund started", [
        f"Your payment of {_amount(b, d)} for {b['car_name']} ({dates(b)}) was made for the"
        " booking's earlier price, so it does not pay the booking. If you have not paid it"
        f" yet, please pay its current amount of {rupees(b['amount_paise'])}.",
        f"The {_amount(b, d)} is on its way back to your original payment method; banks"
        " usually credit it within 5-7 working days.",
    ])


def _dispute_opened(b, d):
    respond_by = d.get("respond_by") or "unknown"
    return (f"Chargeback on booking #{b['id']}: respond by {respond_by}", [
        f"A dispute ({d.get('phase') or 'chargeback'}, reason {d.get('reason_code') or '-'}) of"
        f" {_amount(b, d)} was opened on the payment for booking #{b['id']} ({b['car_name']},"
        f" {dates(b)}). Razorpay holds the disputed amount.",
        f"It is lost automatically unless evidence is submitted by {respond_by}:"
        " `a6pay dispute contest <dispute id>` builds and submits it from our records.",
    ])


# kind → wording; the outbox takes these kinds and no other.
WORDING = {
    "payment_confirmed": _confirmed,
    "payment_failed": _failed,
    "booking_cancelled": _cancelled,
    "refund_initiated": _refund_initiated,
    "refund_processed": _refund_processed,
    "refund_failed": _refund_failed,
    "duplicate_payment_refund": _duplicate_payment_refund,
    "old_price_payment_refund": _old_price_payment_refund,
    "dispute_opened": _dispute_opened,
}
