"""Every service's /metrics, scraped before and after real traffic through the gateway: the
counters move by exactly what was sent. Every service's /readyz answers 200.

A stack of its own (own database, own exchange and queues): the session stack's relays and
notifier would otherwise share this traffic's events, and its webhook retries its routes."""

from __future__ import annotations

import re
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import status_batch
from testkit.api_client import call, create_order, pay, payment_status, send_webhook, verify
from testkit.factories import make_booking
from testkit.infra import eventually, own_database
from testkit.stack import running_stack

pytestmark = pytest.mark.e2e

# ours: the sandbox stands in for Razorpay and the mail catcher for an SMTP server
METERED = ["order_service", "verification_service", "webhook_service", "notifier", "gateway"]
CREATE = "/api/razorpay/create-order"
STATUS = "/api/razorpay/payment-status/{booking_id}"
VERIFY = "/api/razorpay/verify-payment"
WEBHOOK = "/api/razorpay/webhook"
STATUS_LIMIT = 5


@pytest.fixture(scope="module")
async def metered(base_settings):
    async with own_database(base_settings) as (settings, pool):
        env = {"AMQP_EXCHANGE": f"a6pay.metrics.{uuid.uuid4().hex[:8]}",
               "RATE_LIMIT_PAYMENT_STATUS": str(STATUS_LIMIT), "DB_POOL_MAX": "3"}
        with running_stack(settings.database_url, settings.amqp_url, env) as stack:
            yield stack, pool


class Scrape:
    """One scrape of every service: {service: {(name, labels): value}}."""

    def __init__(self, texts: dict[str, str]):
        self.values = {
            service: {(s.name, frozenset(s.labels.items())): s.value
                      for family in text_string_to_metric_families(text)
                      for s in family.samples}
            for service, text in texts.items()}

    def get(self, service: str, name: str, **labels) -> float:
        """Sum over the samples of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.values[service].items() if n == name and want <= ls)


async def scrape(http, stack) -> Scrape:
    texts = {}
    for service in METERED:
        status, body, headers = await call(
            http, "GET", f"http://127.0.0.1:{stack.ports[service]}/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain"), service
        texts[service] = body
    return Scrape(texts)


def payment(order_id: str, payment_id: str, amount: int, status: str = "captured") -> dict:
    return {"id": payment_id, "entity": "payment", "amount": amount, "currency": "INR",
            "status": status, "order_id": order_id, "method": "card"}


def webhook(event: str, entity: dict) -> bytes:
    import json
    return json.dumps({"entity": "event", "event": event, "created_at": 1_700_000_000,
                       "payload": {"payment": {"entity": entity}}}).encode()


async def test_every_service_is_ready(metered, http):
    stack, _ = metered
    for service in METERED:
        status, body, _ = await call(
            http, "GET", f"http://127.0.0.1:{stack.ports[service]}/readyz")
        assert status == 200, (service, body)
        assert body["status"] == "ready" and set(body["checks"].values()) == {"ok"}
    expected = {"gateway": {"order_service", "verification_service", "webhook_service",
                            "rate_limiter"},
                "order_service": {"database", "broker"}, "notifier": {"database", "broker"}}
    for service, checks in expected.items():
        body = (await call(http, "GET", f"http://127.0.0.1:{stack.ports[service]}/readyz"))[1]
        assert set(body["checks"]) == checks, service


async def test_counters_move_by_exactly_the_traffic_sent(metered, http):
    stack, pool = metered
    before = await scrape(http, stack)
    bookings = [await make_booking(pool, 150_000) for _ in range(3)]
    orders = []
    for booking in bookings:
        status, body, _ = await create_order(http, stack, booking)
        assert status == 200, body
        orders.append(body["order_id"])
    # booking 0: paid in the browser and verified; booking 1: paid, told by webhooks only
    paid = await pay(http, stack, orders[0], "captured", enabled=False)
    assert (await verify(http, stack, bookings[0], paid))[0] == 200
    told = await pay(http, stack, orders[1], "captured", enabled=False)
    captured = payment(orders[1], told["razorpay_payment_id"], 150_000)
    event_id = f"evt_{uuid.uuid4().hex[:14]}"
    deliveries = [
        (webhook("payment.captured", captured), event_id, None, 200),   # applied
        (webhook("payment.captured", captured), event_id, None, 200),   # duplicate
        (webhook("payment.authorized", {**captured, "status": "authorized"}), None, None, 200),
        (webhook("payment.captured", payment("order_NoSuchOrder01", "pay_NoSuchPay001",
                                             100)), None, None, 200),  # unknown_order
        (webhook("invoice.paid", captured), None, None, 200),          # unknown_event
        (webhook("payment.captured", captured), None, "0" * 64, 400),  # bad_signature
    ]
    for raw, evt, signature, expected in deliveries:
        status, body, _ = await send_webhook(http, stack, raw, event_id=evt, signature=signature)
        assert status == expected, body
    client = "203.0.113.77"  # one client: the 6th and 7th status reads are rate limited
    statuses = [(await call(http, "GET", f"{stack.gateway}/api/razorpay/payment-status/"
                            f"{bookings[0]['booking_id']}", client=client))[0]
                for _ in range(STATUS_LIMIT + 2)]
    assert statuses == [200] * STATUS_LIMIT + [429, 429]
    assert (await payment_status(http, stack, 987_654_321))[0] == 404

    async def settled():  # events published and consumed, outbox empty again
        now = await scrape(http, stack)
        consumed = now.get("notifier", "a6pay_events_consumed_total") - before.get(
            "notifier", "a6pay_events_consumed_total")
        return now if consumed == 5 and now.get("order_service", "a6pay_outbox_unsent") == 0 \
            else None

    after = await eventually(settled, timeout=30, interval=0.5)

    def moved(service, name, **labels):
        return after.get(service, name, **labels) - before.get(service, name, **labels)

    for service in ("gateway", "order_service"):
        assert moved(service, "a6pay_http_requests_total", route=CREATE, method="POST",
                     status="200") == 3
        assert moved(service, "a6pay_http_request_duration_seconds_count", route=CREATE) == 3
    # payment-status: the gateway counts each request, order_service the calls that carried
    # them (shared/status_batch.py): here one each, as they were sent one at a time
    assert moved("gateway", "a6pay_http_requests_total", route=STATUS, method="GET",
                 status="200") == STATUS_LIMIT
    assert moved("gateway", "a6pay_http_requests_total", route=STATUS, status="404") == 1
    assert moved("order_service", "a6pay_http_requests_total", route=status_batch.PATH,
                 method="POST", status="200") == STATUS_LIMIT + 1
    assert moved("order_service", "a6pay_http_requests_total", route=STATUS) == 0
    assert moved("gateway", "a6pay_http_requests_total", route=STATUS, status="429") == 2
    assert moved("order_service", "a6pay_http_requests_total", route=STATUS, status="429") == 0
    assert moved("gateway", "a6pay_rate_limited_total", route=STATUS) == 2
    for service in ("gateway", "verification_service"):
        assert moved(service, "a6pay_http_requests_total", route=VERIFY, status="200") == 1
    for service in ("gateway", "webhook_service"):
        assert moved(service, "a6pay_http_requests_total", route=WEBHOOK, status="200") == 5
        assert moved(service, "a6pay_http_requests_total", route=WEBHOOK, status="400") == 1

    outcomes = {(e, o): moved("webhook_service", "a6pay_webhook_deliveries_total", event=e,
                              outcome=o)
                for e, o in (("payment.captured", "applied"), ("payment.captured", "duplicate"),
                             ("payment.authorized", "stale"),
                             ("payment.captured", "unknown_order"),
                             ("invoice.paid", "unknown_event"),
                             ("unverified", "bad_signature"))}
    assert set(outcomes.values()) == {1.0}, outcomes
    assert moved("webhook_service", "a6pay_webhook_deliveries_total") == 6

    assert moved("order_service", "a6pay_razorpay_requests_total", operation="create_order",
                 result="ok") == 3
    assert moved("order_service", "a6pay_razorpay_request_duration_seconds_count",
                 operation="create_order") == 3
    assert moved("verification_service", "a6pay_razorpay_requests_total",
                 operation="fetch_payment", result="ok") == 1
    # Every service's relay claims from the one outbox, so which relay published an event
    # is chance: the sum is what was sent.
    relays = ("order_service", "verification_service", "webhook_service")
    published = {kind: sum(moved(service, "a6pay_events_published_total", type=kind)
                           for service in relays)
                 for kind in ("order.created", "payment.captured", "payment.failed")}
    assert published == {"order.created": 3, "payment.captured": 2, "payment.failed": 0}
    assert moved("notifier", "a6pay_events_consumed_total", consumer="notifier",
                 type="payment.captured", outcome="applied") == 2
    assert moved("notifier", "a6pay_events_consumed_total", type="order.created") == 3
    assert after.get("notifier", "a6pay_dead_letters") == 0
    ids = re.compile(r"(pay|order|evt)_[A-Za-z0-9]{10,}|\d{4,}")  # Razorpay's, ours
    for service in METERED:  # no id ever becomes a label value
        for (_, labels) in after.values[service]:
            for name, value in labels:
                assert name in ("le", "quantile") or not ids.search(value), (service, value)
