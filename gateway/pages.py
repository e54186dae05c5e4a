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


async def payment_success(request: web.Request) -> web.Response:
    booking = request.query.get("booking_id", "")[:20]
    return _page("Payment received", f"Booking {booking} is paid. Your QR passes are ready.")


async def payment_failure(request: web.Request) -> web.Response:
    reason = request.query.get("reason", "unknown")[:40]
    return _page("Payment not completed", f"Reason: {reason}. You can try paying again.")
