"""`create_app(settings)`: the gateway application, nothing connected until startup."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.admin_guard import FAILED_AUTH
from gateway.client_ip import parse_trusted_proxies
from gateway.cors import setup_cors
from gateway.middlewares import access_middleware
from gateway.openapi import openapi_view
from gateway.proxy import RETURNED_RESPONSE_HEADERS
from gateway.ratelimit import Limiter, Rate, RateLimiter
from gateway.routes import (
    CREATE_ORDER,
    LANES,
    PASS_SCAN,
    PAYMENT_STATUS,
    VERIFY_PAYMENT,
    WEBHOOK_LANE,
    setup_routes,
)
from gateway.shared_limits import SharedRateLimiter
from gateway.status_batch import status_batcher
from gateway.upstream import Upstream, UpstreamError, UpstreamPool
from shared import local_sockets, metrics, private_access, readiness
from shared.http import error_middleware
from shared.settings import Settings

logger = logging.getLogger("gateway")

_MIN_JWT_SECRET_BYTES = 32  # RFC 7518: an HS256 key at least as long as the hash


def build_rate_limiter(settings: Settings) -> Limiter:
    """Shared through Redis by every gateway when REDIS_URL is set, else in this process."""
    # each group's limit is the setting named after it: rate_limit_create_order, ...
    rates = {group: Rate(getattr(settings, f"rate_limit_{group}"),
                         settings.rate_limit_window_seconds)
             for group in (CREATE_ORDER, VERIFY_PAYMENT, PAYMENT_STATUS, PASS_SCAN, FAILED_AUTH)}
    if settings.redis_url:
        return SharedRateLimiter(settings.redis_url, rates,
                                 key_prefix=settings.rate_limit_redis_prefix)
    return RateLimiter(rates, max_keys=settings.rate_limit_max_clients)


def rate_limiter_state(app: web.Application) -> None:
    """Redis away: the limiter fails open, so the gateway stays ready and says so."""
    state = app[keys.LIMITER].status()
    if not state["ok"]:
        raise readiness.Degraded(state["detail"])


async def upstream_pools_ctx(app: web.Application) -> AsyncIterator[None]:
    """A pool per lane (gateway/routes.py): calls stuck on a slow Razorpay behind
    create-order, verify or the admin API fill only their own lanes, while webhooks (their
    own reserve) and payment-status still get connections at once. One more for the readiness checks
    of the services, so they take the very way requests take."""
    settings = app[keys.SETTINGS]
    sizes = {lane: settings.gateway_lane_connections for lane in LANES}
    sizes[WEBHOOK_LANE] = settings.gateway_webhook_connections
    app[keys.LANE_POOLS] = {lane: UpstreamPool(n, RETURNED_RESPONSE_HEADERS)
                            for lane, n in sizes.items()}
    app[keys.PROBE_POOL] = UpstreamPool(10, ())
    if settings.gateway_status_batch:
        app[keys.STATUS_BATCHER] = status_batcher(
            app[keys.LANE_POOLS][PAYMENT_STATUS], app[keys.UPSTREAMS]["order_service_url"],
            settings.gateway_upstream_timeout_seconds)
    yield
    if settings.gateway_status_batch:
        await app[keys.STATUS_BATCHER].close()
    for pool in (*app[keys.LANE_POOLS].values(), app[keys.PROBE_POOL]):
        await pool.close()


def upstream_of(settings: Settings, setting: str) -> Upstream:
    """Where the gateway reaches a service: its processes' sockets when SOCKET_DIR is set,
    else its URL."""
    if settings.socket_dir:
        service = setting.removesuffix("_url")
        return Upstream.local(
            local_sockets.worker_paths(settings.socket_dir, service, settings.workers))
    return Upstream.parse(getattr(settings, setting))


def create_app(settings: Settings) -> web.Application:
    # Our own reader enforces the exact limit (and chunked bodies); this is the backstop
    # for anything that calls request.read(), mapped to the same JSON 413.
    app = web.Application(
        middlewares=[access_middleware, error_middleware],
        client_max_size=settings.gateway_max_body_bytes,
        handler_args=metrics.handler_args("gateway", settings.metrics_enabled),
    )
    app[keys.SETTINGS] = settings
    # after access_middleware, which finds the client behind the trusted proxies
    private_access.install(app, settings.admin_allowed_networks, lambda r: r[keys.CLIENT])
    app[keys.TRUSTED_PROXIES] = parse_trusted_proxies(settings.trusted_proxies)
    app[keys.UPSTREAMS] = {name: upstream_of(settings, name) for name in UPSTREAMS}
    app[keys.LIMITER] = build_rate_limiter(settings)
    if settings.auth_jwt_secret and len(settings.auth_jwt_secret.encode()) < _MIN_JWT_SECRET_BYTES:
        logger.warning("AUTH_JWT_SECRET is shorter than 32 bytes; tokens can be brute-forced")
    app.cleanup_ctx.append(upstream_pools_ctx)
    app.on_cleanup.append(lambda app: app[keys.LIMITER].close())
    setup_routes(app)
    setup_cors(app, settings.cors_origins)
    app.router.add_route("GET", "/openapi.json", openapi_view, name="openapi")
    readiness.install(app)
    readiness.add_check(app, "rate_limiter", rate_limiter_state)
    for setting in UPSTREAMS:
        readiness.add_check(app, setting.removesuffix("_url"), upstream_ready(setting))
    metrics.install(app, settings.metrics_enabled)
    return app


# The Settings fields of the services' URLs, one per service the gateway calls
UPSTREAMS = tuple(f"{service}_url" for service in local_sockets.SERVICES)


def upstream_ready(setting: str) -> readiness.Check:
    """What a service behind the gateway says of itself, for the operator. It never makes
    the gateway not ready: every gateway shares the same services, so taking gateways out of
    rotation helps no request, and a request the service cannot serve gets its 503 anyway."""

    async def check(app: web.Application) -> None:
        try:
            answer = await app[keys.PROBE_POOL].request(
                app[keys.UPSTREAMS][setting], "GET", "/readyz", (), b"",
                readiness.CHECK_TIMEOUT_SECONDS)
        except UpstreamError as exc:
            raise readiness.Degraded(str(exc)) from None  # e.g. "cannot connect: ..."
        if answer.status != 200:
            raise readiness.Degraded(f"answered {answer.status}")

    return check
