"""shared/metrics.py and shared/readiness.py on a small app: route templates as labels,
the agreed names exported, /readyz answering 200 or 503 with its reasons."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from shared import metrics, readiness
from testkit.api_client import raw_request
from tests.support.metrics import exported_names

# The names the team agreed on (TEAM.md); dashboards and alerts may rely on each.
AGREED = {
    "a6pay_http_requests_total", "a6pay_http_request_duration_seconds_bucket",
    "a6pay_webhook_deliveries_total", "a6pay_outbox_unsent",
    "a6pay_outbox_oldest_unsent_seconds", "a6pay_events_published_total",
    "a6pay_events_consumed_total", "a6pay_dead_letters", "a6pay_razorpay_requests_total",
    "a6pay_razorpay_request_duration_seconds_bucket", "a6pay_rate_limited_total",
    "a6pay_reconcile_total", "a6pay_payments_stuck", "a6pay_mails_total",
    "a6pay_mails_pending", "a6pay_refunds_total",
}


def test_every_agreed_name_is_exported():
    assert AGREED <= exported_names()


def sample(text: str, name: str, **labels) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


async def item(request: web.Request) -> web.Response:
    if request.match_info["item_id"] == "boom":
        raise web.HTTPNotFound()
    return web.json_response({"ok": True})


def small_app(enabled: bool = True) -> web.Application:
    app = web.Application(handler_args=metrics.handler_args("unit_test", enabled))
    app.router.add_get("/items/{item_id}", item)
    readiness.install(app)
    metrics.install(app, enabled)
    return app


async def test_requests_are_counted_by_route_template_not_by_raw_path():
    async with TestClient(TestServer(small_app())) as client:
        before = await (await client.get("/metrics")).text()
        for item_id in ("1", "2", "pay_SECRET123"):
            assert (await client.get(f"/items/{item_id}")).status == 200
        assert (await client.get("/items/boom")).status == 404
        assert (await client.get("/nowhere")).status == 404
        after = await (await client.get("/metrics")).text()
    route = "/items/{item_id}"
    labels = {"service": "unit_test", "route": route, "method": "GET"}
    assert sample(after, "a6pay_http_requests_total", status="200", **labels) - sample(
        before, "a6pay_http_requests_total", status="200", **labels) == 3
    assert sample(after, "a6pay_http_requests_total", status="404", **labels) - sample(
        before, "a6pay_http_requests_total", status="404", **labels) == 1
    assert sample(after, "a6pay_http_request_duration_seconds_count", **labels) - sample(
        before, "a6pay_http_request_duration_seconds_count", **labels) == 4
    assert sample(after, "a6pay_http_requests_total", route="unmatched", status="404") >= 1
    assert "pay_SECRET123" not in after and "/items/1" not in after


async def test_a_request_the_parser_refused_is_counted_without_a_traceback(caplog):
    async with TestClient(TestServer(small_app())) as client:
        before = await (await client.get("/metrics")).text()
        status, _ = await raw_request(str(client.make_url("/")),
                                      b"GET /items/\xff HTTP/1.1")
        assert status == 400
        after = await (await client.get("/metrics")).text()
    # aiohttp logs the refusal itself; counting it must add nothing of its own
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
                and not r.getMessage().startswith("Error handling request")]
    assert failures == []
    labels = {"service": "unit_test", "route": "unmatched", "status": "400"}
    assert sample(after, "a6pay_http_requests_total", **labels) - sample(
        before, "a6pay_http_requests_total", **labels) == 1


async def test_metrics_can_be_switched_off():
    async with TestClient(TestServer(small_app(enabled=False))) as client:
        assert (await client.get("/metrics")).status == 404
        assert (await client.get("/items/1")).status == 200


async def test_readyz_is_200_when_every_check_passes_and_503_naming_the_failure():
    app = small_app()
    state = {"db": True}

    async def database(_app):
        if not state["db"]:
            raise ConnectionRefusedError

    def broker(_app):  # a plain function will do for a check that does no I/O
        return True

    readiness.add_check(app, "database", database)
    readiness.add_check(app, "broker", broker)
    async with TestClient(TestServer(app)) as client:
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert await ready.json() == {"status": "ready",
                                      "checks": {"database": "ok", "broker": "ok"}}
        state["db"] = False
        down = await client.get("/readyz")
        assert down.status == 503
        body = await down.json()
        assert body["status"] == "not ready"
        assert body["checks"] == {"database": "ConnectionRefusedError", "broker": "ok"}
        assert body["message"] == "Not ready: database"


async def test_a_check_that_hangs_or_says_false_is_not_ready(monkeypatch):
    monkeypatch.setattr(readiness, "CHECK_TIMEOUT_SECONDS", 0.05)
    app = small_app()

    async def hangs(_app):
        await asyncio.sleep(60)

    async def says_no(_app):
        return False

    async def refuses(_app):
        raise readiness.NotReady("redis: no answer")

    for name, check in (("hangs", hangs), ("says_no", says_no), ("refuses", refuses)):
        readiness.add_check(app, name, check)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/readyz")
        assert answer.status == 503
        assert (await answer.json())["checks"] == {
            "hangs": "timeout", "says_no": "not ready", "refuses": "redis: no answer"}
