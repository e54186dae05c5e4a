"""The default landing pages after checkout (CHECKOUT_SUCCESS_URL / CHECKOUT_FAILURE_URL),
so a person paying in a browser on `make run` sees where they ended. A real site points
those settings at its own pages."""

from __future__ import annotations

from html import escape

from aiohttp import web

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>A6 Cars: {title}</title></head><body style="font-family: sans-serif; margin: 3em">
<h1>{title}</h1><p>{text}</p></body></html>"""


def _page(title: str, text: str) -> web.Response:
    return web.Response(
        text=_PAGE.format(title=escape(title), text=escape(text)),
        content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )


# The reasons verification_service redirects with, as the page words them. Anything else
# is "unknown": the page never shows text from the request, so a link to our own domain
# cannot carry a message an attacker wrote ("call this number for your refund").
FAILURE_REASONS = {
    "payment_failed": "the payment failed",
    "missing_fields": "the payment details were incomplete",
    "invalid_signature": "the payment could not be verified",
    "not_found": "the booking was not found",
    "payment_not_found": "the payment was not found",
    "mismatch": "the payment does not match the order",
    "not_captured": "the payment was not captured",
    "already_paid": "the booking is already paid",
    "booking_cancelled": "the booking was cancelled",
    "order_superseded": "the booking's price changed, so this payment goes back to you",
    "refunded": "the payment was refunded",
    "provider_unavailable": "the payment provider did not answer",
    "unavailable": "the service is unavailable",
}


async def payment_success(request: web.Request) -> web.Response:
    booking = request.query.get("booking_id", "")
    shown = f"Booking {booking}" if booking.isascii() and booking.isdigit() and len(
        booking) <= 19 else "Your booking"
    return _page("Payment received", f"{shown} is paid. Your QR passes are ready.")


async def payment_failure(request: web.Request) -> web.Response:
    reason = FAILURE_REASONS.get(request.query.get("reason", ""), "unknown")
    return _page("Payment not completed", f"Reason: {reason}. You can try paying again.")
