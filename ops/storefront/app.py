"""The demo storefront `make run` serves on a port of its own, so that its calls to the
gateway are cross-origin as a real site's are: the seed's two Checkout flows on a booking
(`/?booking_id=…&customer_id=…&amount=…`), with Razorpay's Checkout script from the
sandbox (or from Razorpay, with live keys). Static files and one page; no state."""

from __future__ import annotations

import functools
import html
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from aiohttp import web

from shared.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
STATIC = {"storefront.js": "application/javascript", "storefront.css": "text/css",
          "logo.svg": "image/svg+xml"}


@functools.cache
def _read(name: str) -> str:
    return resources.files("ops.storefront").joinpath("static", name).read_text("utf-8")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    """No inline script: our own file, Razorpay's script and its frame, calls to the gateway."""
    checkout = origin_of(settings.storefront_checkout_script_url)
    gateway = origin_of(settings.storefront_gateway_url)
    return (f"default-src 'none'; script-src 'self' {checkout}; frame-src {checkout}; "
            f"connect-src {gateway}; img-src 'self' data:; style-src 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")


async def index(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    page = Template(_read("index.html")).substitute(
        gateway=html.escape(settings.storefront_gateway_url.rstrip("/")),
        key_id=html.escape(settings.razorpay_key_id),
        checkout_script=html.escape(settings.storefront_checkout_script_url),
    )
    return web.Response(text=page, content_type="text/html", headers={
        "Content-Security-Policy": content_security_policy(settings),
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    return web.Response(text=_read(name), content_type=STATIC[name],
                        headers={"X-Content-Type-Options": "nosniff"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/healthz", healthz)
    return app
