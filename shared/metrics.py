"""Prometheus metrics: one registry per process, every `a6pay_*` family defined here.

Label values are always from a small fixed set (a route template, an event type, an
outcome): never an id, an email or an amount, which would make a series per payment and
put customer data in the monitoring system. A value that comes from outside (a webhook's
event name) is checked against a pattern first and counted as "other" if it fails.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections.abc import Iterator

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
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
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# The `*_created` series double every counter's output and nothing here reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # RSS, CPU, open fds: process_* families
PlatformCollector(registry=REGISTRY)

# Latency buckets, seconds: local calls are milliseconds, Razorpay up to its 5 s timeout.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# a6pay_http_requests_total and a6pay_http_request_duration_seconds: HTTP_REQUESTS below.

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

# The money after capture: second captures, refunds made without us, disputes.
DUPLICATE_PAYMENTS = Counter(
    "a6pay_duplicate_payments", "Second captured payments found for a paid booking (refunded).",
    ["found_by"], registry=REGISTRY)
OUTSIDE_REFUNDS = Counter(
    "a6pay_outside_refunds", "Refunds made at Razorpay without us (its dashboard), recorded.",
    registry=REGISTRY)
DISPUTE_EVENTS = Counter(
    "a6pay_dispute_events", "Dispute changes applied, by the status they moved to.",
    ["status"], registry=REGISTRY)
DISPUTES_OPEN = Gauge(
    "a6pay_disputes_open", "Disputes open (evidence wanted or under review).",
    registry=REGISTRY)
DISPUTE_RESPOND_BY = Gauge(
    "a6pay_dispute_respond_by_seconds",
    "Seconds to the nearest respond_by of a dispute still waiting for us (+Inf: none).",
    registry=REGISTRY)
SETTLEMENTS_UNMATCHED = Gauge(
    "a6pay_settlements_unmatched", "Settlements whose items do not add up to their amount.",
    registry=REGISTRY)
PAYMENTS_UNSETTLED = Gauge(
    "a6pay_payments_unsettled", "Captured payments past SETTLEMENT_DUE_DAYS with no settlement.",
    registry=REGISTRY)
SETTLEMENT_FEES = Gauge(
    "a6pay_settlement_fees_paise", "Razorpay's fees (GST included) settled this month, paise.",
    registry=REGISTRY)
SETTLEMENT_GST = Gauge(
    "a6pay_settlement_gst_paise", "The GST within those fees, settled this month, paise.",
    registry=REGISTRY)
# Outages of the data tier as this process sees them: 0 while it cannot reach the database
# primary or any broker node; a reconnect counted each time it reaches one again.
DEPENDENCY_UP = Gauge(
    "a6pay_dependency_up", "1 while this process reaches the dependency (database|broker).",
    ["dependency"], registry=REGISTRY)
RECONNECTS = Counter(
    "a6pay_reconnects", "Times this process reached a dependency again after losing it.",
    ["dependency"], registry=REGISTRY)

UNMATCHED_ROUTE = "unmatched"
OTHER = "other"  # a label value from outside that did not look like one of ours
# The method aiohttp gives a request whose head its parser refused: it answers that request
# itself, without routing it. A client that sends this method by name is counted with them.
_UNPARSED_METHOD = "UNKNOWN"


class _Series:
    __slots__ = ("count", "seconds", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(_BUCKETS) + 1)  # per bucket, not cumulative; last: +Inf


# A client can send any method name: the others are counted as one.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpRequests:
    """`a6pay_http_requests_total` and `a6pay_http_request_duration_seconds`, counted in
    plain integers on the event loop and turned into Prometheus families when scraped (a
    custom collector). On the hottest path of every service, counting is a few attribute
    reads and a dict update (see `_request_counter`): prometheus-client's own Counter and
    Histogram behind a middleware take a lock per increment and per bucket, a cost every
    request would pay for a figure read only when Prometheus scrapes."""

    def __init__(self) -> None:
        # service -> (route's resource, method, status) -> its counts; the resource object
        # (None when no route matched), turned into its template only when scraped
        self._tables: dict[str, dict[tuple, _Series]] = {}

    def table(self, service: str) -> dict[tuple, _Series]:
        return self._tables.setdefault(service, {})

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "a6pay_http_requests", "HTTP requests answered, by route template and status.",
            labels=["service", "route", "method", "status"])
        durations = HistogramMetricFamily(
            "a6pay_http_request_duration_seconds", "Time to answer an HTTP request.",
            labels=["service", "route", "method"])
        by_route: dict[tuple[str, str, str], _Series] = {}
        for service, table in list(self._tables.items()):
            for (resource, method, status), series in list(table.items()):
                route = resource.canonical if resource is not None else UNMATCHED_ROUTE
                requests.add_metric([service, route, method, str(status)], series.count)
                merged = by_route.setdefault((service, route, method), _Series())
                merged.count += series.count
                merged.seconds += series.seconds
                merged.buckets = [a + b for a, b in zip(merged.buckets, series.buckets,
                                                        strict=True)]
        bounds = [floatToGoString(b) for b in (*_BUCKETS, math.inf)]
        for labels, series in by_route.items():
            cumulative = itertools.accumulate(series.buckets)
            durations.add_metric(list(labels), list(zip(bounds, cumulative, strict=True)),
                                 series.seconds)
        yield requests
        yield durations


HTTP_REQUESTS = HttpRequests()
REGISTRY.register(HTTP_REQUESTS)


def _request_counter(service: str) -> type[AbstractAccessLogger]:
    """aiohttp calls its access logger once per answered request, with the time it took
    (from the request's arrival to its last byte written): the cheapest place to count, no
    middleware frame around every handler. A handler cancelled because its client went
    away answers nobody, and is not counted. Written flat on purpose: every function call
    and property read here is paid on every request of every service."""
    table = HTTP_REQUESTS.table(service)
    bounds, methods, other, bisect_left = _BUCKETS, _METHODS, OTHER, bisect.bisect_left
    unparsed = _UNPARSED_METHOD

    class RequestCounter(AbstractAccessLogger):
        def log(self, request, response, time: float) -> None:
            method = request.method
            if method == unparsed:  # never routed, so it has no match_info to read
                resource = None
            else:
                resource = request.match_info.route.resource  # None: no route matched
            key = (resource, method if method in methods else other, response.status)
            series = table.get(key)
            if series is None:
                series = table[key] = _Series()
            series.count += 1
            series.seconds += time
            series.buckets[bisect_left(bounds, time)] += 1

    return RequestCounter


def handler_args(service: str, enabled: bool) -> dict:
    """What `web.Application(handler_args=...)` needs to count every request, unless
    METRICS_ENABLED is off."""
    if not enabled:
        return {}
    return {"access_log_class": _request_counter(service),
            "access_log": logging.getLogger("a6pay.request_counter")}


async def metrics_view(_: web.Request) -> web.Response:
    # Content-Type carries a version parameter; aiohttp wants it as a header, not content_type.
    return web.Response(body=generate_latest(REGISTRY), headers={
        "Content-Type": CONTENT_TYPE_LATEST})


def install(app: web.Application, enabled: bool) -> None:
    """`GET /metrics`, unless METRICS_ENABLED is off. Requests are counted by the app's
    `handler_args` (above). Call before the app is frozen (in its factory)."""
    if not enabled:
        return
    app.router.add_get("/metrics", metrics_view, name="metrics", allow_head=False)
