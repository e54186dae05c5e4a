"""Typed keys for what the app and each request carry (aiohttp AppKey / RequestKey)."""

from __future__ import annotations

from aiohttp import web

from gateway.client_ip import IPNetwork
from gateway.ratelimit import Limiter
from gateway.upstream import Answer, Upstream, UpstreamPool
from shared.coalesce import Coalescer
from shared.settings import Settings

SETTINGS = web.AppKey("gateway_settings", Settings)
# One connection pool per lane of routes: a slow upstream behind one lane cannot take the
# connections another lane needs.
LANE_POOLS = web.AppKey("gateway_lane_pools", dict[str, UpstreamPool])
PROBE_POOL = web.AppKey("gateway_probe_pool", UpstreamPool)  # the readiness checks'
# Settings field of a service's base URL -> where it listens (its URL or its sockets)
UPSTREAMS = web.AppKey("gateway_upstreams", dict[str, Upstream])
# payment-status requests in flight, many per call to order_service (gateway/status_batch.py)
STATUS_BATCHER = web.AppKey("gateway_status_batcher", Coalescer[tuple[str, str | None], Answer])
LIMITER = web.AppKey("gateway_rate_limiter", Limiter)
TRUSTED_PROXIES = web.AppKey("gateway_trusted_proxies", tuple[IPNetwork, ...])

REQUEST_ID = web.RequestKey("gateway_request_id", str)
CLIENT = web.RequestKey("gateway_client", str)
