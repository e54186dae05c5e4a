"""The checkout's HTML pages. Every value put into a page is HTML-escaped here."""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiMapping

from razorpay_sandbox.entities import Order
from razorpay_sandbox.errors import ApiError

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


# The Checkout modal lives in the merchant's page (any origin frames it); its script is
# our own file, its images the merchant's logo wherever that is.
_MODAL_HEADERS = {
    **_HEADERS,
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'unsafe-inline'; img-src * data:; form-action 'none'; frame-ancestors *",
}


def _render(name: str, http_status: int = 200, headers: dict[str, str] = _HEADERS,
            **values: str) -> web.Response:
    """Substitute escaped values; keys starting with `html_` are already-safe fragments."""
    safe = {
        key.removeprefix("html_"): value if key.startswith("html_") else html.escape(value)
        for key, value in values.items()
    }
    body = _template(name).substitute(safe)
    return web.Response(text=body, status=http_status, content_type="text/html", headers=headers)


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


_COLOR = re.compile(r"#[0-9A-Fa-f]{3,8}")
DEFAULT_COLOR = "#3399cc"
MAX_TEXT = 200


@dataclass(frozen=True)
class ModalOptions:
    """What `new Razorpay(options)` shows in the modal, as checkout.js passes it."""

    name: str = ""
    description: str = ""
    image: str = ""
    color: str = DEFAULT_COLOR
    prefill: tuple[tuple[str, str], ...] = ()
    notes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_query(cls, query: MultiMapping[str]) -> ModalOptions:
        text = lambda key: query.get(key, "")[:MAX_TEXT]  # noqa: E731
        image = query.get("image", "")
        color = query.get("theme_color", "")
        prefill = tuple((label, text(f"prefill_{key}")) for key, label in
                        (("name", "Name"), ("email", "Email"), ("contact", "Phone"))
                        if text(f"prefill_{key}"))
        return cls(
            name=text("name"), description=text("description"),
            image=image if is_web_url(image) or image.startswith("data:image/") else "",
            color=color if _COLOR.fullmatch(color) else DEFAULT_COLOR,
            prefill=prefill, notes=tuple(_notes(query.get("notes", ""))),
        )


def _notes(raw: str) -> list[tuple[str, str]]:
    try:
        notes = json.loads(raw) if raw else {}
    except ValueError:
        return []
    if not isinstance(notes, dict):
        return []
    return [(str(key)[:MAX_TEXT], str(value)[:MAX_TEXT]) for key, value in notes.items()][:15]


def _rows(pairs) -> str:
    return "".join(f"  <dt>{html.escape(key)}</dt><dd>{html.escape(value)}</dd>\n"
                   for key, value in pairs)


_ACTIONS = """<div class="actions">
  <button type="button" class="primary" data-outcome="captured">Pay</button>
  <button type="button" data-outcome="authorized">Authorize only</button>
  <button type="button" data-outcome="failed">Fail</button>
</div>"""


def modal(options: ModalOptions, origin: str, key: str, *, order: Order | None = None,
          error: ApiError | None = None) -> web.Response:
    """The modal for an order, or Razorpay's error (then no button pays)."""
    image = (f'<img class="logo" alt="" src="{html.escape(options.image)}">'
             if options.image else "")
    amount = ""
    if order is not None:
        symbol = "\u20b9" if order.currency == "INR" else order.currency + " "
        amount = symbol + rupees(order.amount - order.amount_paid)
    return _render(
        "modal.html",
        http_status=200,
        headers=_MODAL_HEADERS,
        merchant=options.name or "Merchant",
        description=options.description,
        color=options.color,
        origin=origin,
        key=key,
        order_id=order.id if order is not None else "",
        amount=amount,
        error=f"{error.code}: {error.description}" if error is not None else "",
        error_hidden="" if error is not None else "hidden",
        html_image=image,
        html_details=_rows(options.prefill + options.notes),
        html_actions=_ACTIONS if order is not None else "",
    )
