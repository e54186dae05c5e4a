"""The checkout's HTML pages. Every value put into a page is HTML-escaped here."""

from __future__ import annotations

import functools
import html
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from aiohttp import web

from razorpay_sandbox.entities import Order

# The callback page needs its one inline script; nothing is loaded from elsewhere.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; form-action *",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@functools.cache
def _template(name: str) -> Template:
    text = resources.files("razorpay_sandbox").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def _render(name: str, http_status: int = 200, **values: str) -> web.Response:
    """Substitute escaped values; keys starting with `html_` are already-safe fragments."""
    safe = {
        key.removeprefix("html_"): value if key.startswith("html_") else html.escape(value)
        for key, value in values.items()
    }
    body = _template(name).substitute(safe)
    return web.Response(text=body, status=http_status, content_type="text/html", headers=_HEADERS)


def is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def rupees(paise: int) -> str:
    return f"{paise // 100:,}.{paise % 100:02d}"


def checkout(order: Order, callback_url: str) -> web.Response:
    notes = "".join(
        f"  <dt>{html.escape(str(key))}</dt><dd>{html.escape(str(value))}</dd>\n"
        for key, value in order.notes.items()
    )
    return _render(
        "checkout.html",
        amount_rupees=rupees(order.amount - order.amount_paid),
        order_id=order.id,
        receipt=order.receipt or "",
        order_status=str(order.status),
        callback_url=callback_url,
        html_notes_rows=notes,
    )


def callback(callback_url: str, fields: list[tuple[str, str]]) -> web.Response:
    inputs = "".join(
        f'  <input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">\n'
        for name, value in fields
    )
    return _render("callback.html", callback_url=callback_url, html_fields=inputs)


def message(title: str, text: str, status: int) -> web.Response:
    return _render("message.html", http_status=status, title=title, text=text)
