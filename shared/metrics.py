"""Prometheus metrics: one registry per process, every `a6pay_*` family defined here.

Label values are always from a small fixed set (a route template, an event type, an
outcome): never an id, an email or an amount, which would make a series per payment and
put customer data in the monitoring system. A value that comes from outside (a webhook's
event name) is checked against a pattern first and counted as "other" if it fails.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

# The `*_created` series double every counter's output and nothing here reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # RSS, CPU, open fds: process_* families
PlatformCollector(registry=REGISTRY)

# Latency buckets, seconds: local calls are milliseconds, Razorpay up to its 5 s timeout.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "a6pay_http_requests", "HTTP requests answered, by route template and status.",
    ["service", "route", "method", "status"], registry=REGISTRY)
HTTP_DURATION = Histogram(
    "a6pay_http_request_duration_seconds", "Time to answer an HTTP request.",
    ["service", "route", "method"], buckets=_BUCKETS, registry=REGISTRY)

WEBHOOK_DELIVERIES = Counter(
    "a6pay_webhook_deliveries", "Razorpay webhook deliveries, by event and what we did.",
    ["event", "outcome"], registry=REGISTRY)

OUTBOX_UNSENT = Gauge(
    "a6pay_outbox_unsent", "Outbox events not yet published to the broker.",
    registry=REGISTRY)
OUTBOX_OLDEST_UNSENT = Gauge(
    "a6pay_outbox_oldest_unsent_seconds", "Age of the oldest unpublished outbox event.",
    registry=REGISTRY)
EVENTS_PUBLISHED = Counter(
    "a6pay_events_published", "Events the outbox relay published (broker confirmed).",
    ["type"], registry=REGISTRY)
EVENTS_CONSUMED = Counter(
    "a6pay_events_consumed", "Events a consumer settled, by outcome.",
    ["consumer", "type", "outcome"], registry=REGISTRY)
DEAD_LETTERS = Gauge(
    "a6pay_dead_letters", "Messages waiting in the dead-letter queue (polled).",
    registry=REGISTRY)

RAZORPAY_REQUESTS = Counter(
    "a6pay_razorpay_requests", "Calls to Razorpay's API, by operation and result.",
    ["operation", "result"], registry=REGISTRY)
RAZORPAY_DURATION = Histogram(
    "a6pay_razorpay_request_duration_seconds", "Time a Razorpay call took.",
    ["operation"], buckets=_BUCKETS, registry=REGISTRY)

RATE_LIMITED = Counter(
    "a6pay_rate_limited", "Requests refused with 429 by the gateway.",
    ["route"], registry=REGISTRY)
RECONCILE = Counter(
    "a6pay_reconcile", "Orders the reconciler asked Razorpay about, by result.",
    ["result"], registry=REGISTRY)
PAYMENTS_STUCK = Gauge(
    "a6pay_payments_stuck", "Captured payments whose booking is not confirmed.",
    registry=REGISTRY)

MAILS = Counter(
    "a6pay_mails", "Customer mails, by kind and outcome (sent|retried|failed).",
    ["kind", "outcome"], registry=REGISTRY)
MAILS_PENDING = Gauge(
    "a6pay_mails_pending", "Mails in the outbox not sent yet.", registry=REGISTRY)
REFUNDS = Counter(
    "a6pay_refunds", "Refunds, by outcome (requested|processed|failed).",
    ["outcome"], registry=REGISTRY)

UNMATCHED_ROUTE = "unmatched"
OTHER = "other"  # a label value from outside that did not look like one of ours


def exported_names(registry: CollectorRegistry = REGISTRY) -> set[str]:
    """Every series name a scrape can show (`x_total`, `x_bucket`, …), for the test that
    keeps dashboards and alert rules honest."""
    names: set[str] = set()
    for family in registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("_count", "_sum", ""),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def route_of(request: web.Request) -> str:
    """The route template (`/api/razorpay/payment-status/{booking_id}`), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def metrics_middleware(service: str):
    """Counts and times every request by route template. Outermost, so the status counted
    is the one the client got (after the error middleware's mapping)."""

    # (route, method, status) -> its two labelled children: `.labels()` takes a lock and
    # builds and hashes a tuple of strings on every call, on every request. Bounded, because
    # a client can send any method name.
    children: dict[tuple[str, str, int], tuple] = {}

    def children_of(route: str, method: str, status: int) -> tuple:
        pair = children.get((route, method, status))
        if pair is None:
            pair = (HTTP_REQUESTS.labels(service, route, method, str(status)),
                    HTTP_DURATION.labels(service, route, method))
            if len(children) < 1000:
                children[(route, method, status)] = pair
        return pair

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 499  # stays if the client went away and the handler was cancelled
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            requests, duration = children_of(route_of(request), request.method, status)
            requests.inc()
            duration.observe(time.perf_counter() - started)

    return middleware


async def metrics_view(_: web.Request) -> web.Response:
    # Content-Type carries a version parameter; aiohttp wants it as a header, not content_type.
    return web.Response(body=generate_latest(REGISTRY), headers={
        "Content-Type": CONTENT_TYPE_LATEST})


def install(app: web.Application, service: str, enabled: bool) -> None:
    """`GET /metrics` and the request middleware, unless METRICS_ENABLED is off. Call before
    the app is frozen (in its factory)."""
    if not enabled:
        return
    app.middlewares.insert(0, metrics_middleware(service))
    app.router.add_get("/metrics", metrics_view, name="metrics", allow_head=False)
