"""CORS for the browser frontend: only create-order, verify-payment and payment-status,
only for the exact origins in CORS_ALLOWED_ORIGINS (aiohttp-cors does the protocol).

Every other route (the webhook, the checkout callback, admin and staff routes) gets no
preflight route and no CORS header, so a browser refuses a cross-origin call to it.
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import hdrs, web

# The route names (gateway/routes.py) a page on another origin calls
FRONTEND_ROUTES = ("create_order", "verify_payment", "payment_status")
# What the seed's frontend sends: JSON bodies and, with customer auth on, a bearer token
ALLOWED_HEADERS = ("Content-Type", "Authorization")
# What a page may read from our answers beyond the simple headers
EXPOSED_HEADERS = ("Retry-After", "X-Request-Id", "WWW-Authenticate")
PREFLIGHT_CACHE_SECONDS = 600


def setup_cors(app: web.Application, origins: list[str]) -> None:
    """Preflight and Access-Control-Allow-Origin on the frontend's routes, per origin."""
    if not origins:
        return
    cors = aiohttp_cors.setup(app)
    for name in FRONTEND_ROUTES:
        resource = app.router[name]
        options = aiohttp_cors.ResourceOptions(
            allow_credentials=False,  # tokens travel in Authorization, never in cookies
            allow_headers=ALLOWED_HEADERS,
            allow_methods=[route.method for route in resource],  # the route's own
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_CACHE_SECONDS,
        )
        cors.add(resource, {origin: options for origin in origins})
    app.on_response_prepare.append(_vary_on_origin)


async def _vary_on_origin(request: web.Request, response: web.StreamResponse) -> None:
    """The answer depends on the Origin asked from: a shared cache must not hand one
    origin's Access-Control-Allow-Origin to another (aiohttp-cors does not say so)."""
    route = request.match_info.route
    if route.resource is not None and route.resource.name in FRONTEND_ROUTES:
        vary = response.headers.get(hdrs.VARY)
        if vary is None:
            response.headers[hdrs.VARY] = hdrs.ORIGIN
        elif hdrs.ORIGIN.lower() not in vary.lower():
            response.headers[hdrs.VARY] = f"{vary}, {hdrs.ORIGIN}"
