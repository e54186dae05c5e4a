"""The real gateway app on a loopback port, in front of upstream doubles that echo.

Each upstream double answers with what it received (service, method, raw path, headers,
body bytes as base64), so every test can see exactly what crossed the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import aiohttp
import jwt
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port
from yarl import URL

from gateway.app import create_app
from shared import status_batch
from shared.settings import load_settings

JWT_SECRET = "integration-jwt-secret-" + "0123456789abcdef" * 3
SUCCESS_PAGE = "http://127.0.0.1:1/payment/success"  # port 1: following it would fail


def make_upstream(service: str) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        query = request.rel_url.query
        if "delay" in query:
            await asyncio.sleep(float(query["delay"]))
        if "crash" in query:
            return web.Response(
                status=500, text="<html>Traceback ...</html>", content_type="text/html"
            )
        if "status" in query:
            return web.json_response(
                {"message": "slow down"}, status=int(query["status"]), headers={"Retry-After": "7"}
            )
        body = await request.read()
        if request.path == "/api/razorpay/callback":
            raise web.HTTPSeeOther(SUCCESS_PAGE, headers={"Set-Cookie": "upstream=1"})
        return web.json_response(
            {
                "service": service,
                "method": request.method,
                "path": request.raw_path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body_b64": base64.b64encode(body).decode(),
            },
            headers={"Set-Cookie": "upstream=1", "X-Internal": "secret-ish"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest_asyncio.fixture(scope="module")
async def upstreams():
    names = ("order", "verification", "webhook")
    servers = {name: TestServer(make_upstream(name), host="127.0.0.1") for name in names}
    for server in servers.values():
        await server.start_server()
    yield {name: str(server.make_url("")).rstrip("/") for name, server in servers.items()}
    for server in servers.values():
        await server.close()


@pytest_asyncio.fixture
async def start_gateway(upstreams):
    """`await start_gateway(**settings_overrides)` -> the gateway's base URL."""
    servers: list[TestServer] = []

    async def start(**overrides) -> str:
        values = {
            "order_service_url": upstreams["order"],
            "verification_service_url": upstreams["verification"],
            "webhook_service_url": upstreams["webhook"],
            "auth_jwt_secret": "",
            "gateway_trusted_proxies": "",
            # The echo doubles answer the public paths: payment-status goes one call each
            # here. Batched, it is tested against the real order_service
            # (tests/e2e/test_status_batch.py) and by every e2e test that reads a status.
            "gateway_status_batch": False,
        } | overrides
        server = TestServer(create_app(load_settings(**values)), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest_asyncio.fixture
async def http():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest_asyncio.fixture
async def gw(start_gateway):
    return await start_gateway()


def bearer(sub: str = "45", exp_in: float = 300) -> dict[str, str]:
    claims = {"sub": sub, "exp": int(time.time() + exp_in)}
    return {"Authorization": "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")}


async def call(http, method, url, **kwargs):
    async with http.request(method, url, allow_redirects=False, **kwargs) as resp:
        body = await resp.read()
        return resp, body


async def status_of(http, method, url, **kwargs) -> int:
    return (await call(http, method, url, **kwargs))[0].status


async def echoed(http, method, url, **kwargs) -> dict:
    resp, _ = await call(http, method, url, **kwargs)
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    data["body"] = base64.b64decode(data.pop("body_b64"))
    return data


# --- routing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("POST", "/api/razorpay/create-order", "order"),
        ("GET", "/api/razorpay/payment-status/123", "order"),
        ("POST", "/api/razorpay/verify-payment", "verification"),
        ("POST", "/api/razorpay/webhook", "webhook"),
    ],
)
async def test_each_path_reaches_its_service(http, gw, method, path, service):
    data = await echoed(http, method, gw + path, data=b"{}" if method == "POST" else None)
    assert (data["service"], data["method"], data["path"]) == (service, method, path)


async def test_path_query_and_headers_are_forwarded_and_only_the_allowed_ones(http, gw):
    path = "/api/razorpay/payment-status/123?x=1&y=a%20b&z=%2F"
    headers = {
        "Accept": "application/json",
        "X-Razorpay-Signature": "sig",
        "X-Razorpay-Event-Id": "evt_1",
        "Cookie": "session=abc",
        "Authorization": "Bearer leak",
        "X-Forwarded-For": "1.2.3.4",
        "X-Secret-Thing": "nope",
    }
    # encoded=True: send the query exactly as written (yarl would turn %2F into /)
    data = await echoed(http, "GET", URL(gw + path, encoded=True), headers=headers)
    assert data["path"] == path
    sent = data["headers"]
    assert sent["accept"] == "application/json"
    assert sent["x-razorpay-signature"] == "sig"
    assert sent["x-razorpay-event-id"] == "evt_1"
    for dropped in ("cookie", "authorization", "x-forwarded-for", "x-secret-thing"):
        assert dropped not in sent


async def test_only_the_listed_response_headers_come_back(http, gw):
    resp, _ = await call(http, "GET", gw + "/api/razorpay/payment-status/1")
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "Set-Cookie" not in resp.headers
    assert "X-Internal" not in resp.headers


async def test_webhook_body_reaches_the_service_byte_for_byte(http, gw):
    raw = (
        b'{ "event" :\t"payment.captured" ,\r\n  "note": "caf\xc3\xa9 \xe2\x82\xb9 \\u00e9",'
        b'\n\n  "amount":150000.00 }   \n\t'
    )
    data = await echoed(
        http,
        "POST",
        gw + "/api/razorpay/webhook",
        data=raw,
        headers={"Content-Type": "application/json", "X-Razorpay-Signature": "a" * 64},
    )
    assert data["body"] == raw
    assert data["headers"]["content-type"] == "application/json"
    assert data["headers"]["x-razorpay-signature"] == "a" * 64


async def test_a_body_without_content_type_is_not_given_one(http, gw):
    data = await echoed(
        http, "POST", gw + "/api/razorpay/webhook", data=b"raw", skip_auto_headers=["Content-Type"]
    )
    assert data["body"] == b"raw"
    assert "content-type" not in data["headers"]


async def test_callback_form_goes_to_verification_and_its_303_is_not_followed(http, gw):
    form = "razorpay_payment_id=pay_X&razorpay_order_id=order_Y&razorpay_signature=abc"
    resp, _ = await call(
        http,
        "POST",
        gw + "/api/razorpay/callback",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 303
    assert resp.headers["Location"] == SUCCESS_PAGE
    assert "Set-Cookie" not in resp.headers


async def test_upstream_status_and_retry_after_pass_through(http, gw):
    resp, body = await call(http, "GET", gw + "/api/razorpay/payment-status/1?status=429")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "7"
    assert body == b'{"message": "slow down"}'


async def test_a_non_json_upstream_error_page_becomes_a_json_message(http, gw):
    resp, body = await call(http, "GET", gw + "/api/razorpay/payment-status/1?crash=1")
    assert resp.status == 500
    assert await resp.json() == {"message": "Internal server error"}
    assert b"Traceback" not in body


async def test_healthz(http, gw):
    resp, _ = await call(http, "GET", gw + "/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_unknown_path_is_a_json_404(http, gw):
    resp, _ = await call(http, "GET", gw + "/api/razorpay/nope")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert await resp.json() == {"message": "Not found"}
    assert resp.headers["X-Request-Id"]


async def test_wrong_method_is_a_json_405(http, gw):
    resp, _ = await call(http, "GET", gw + "/api/razorpay/create-order")
    assert resp.status == 405
    assert resp.content_type == "application/json"
    assert await resp.json() == {"message": "Method not allowed"}
    assert resp.headers["Allow"] == "POST"


# --- request id ---------------------------------------------------------------------


async def test_request_id_is_generated_forwarded_and_returned(http, gw):
    resp, body = await call(http, "POST", gw + "/api/razorpay/create-order", data=b"{}")
    request_id = resp.headers["X-Request-Id"]
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert f'"x-request-id": "{request_id}"'.encode() in body


async def test_a_valid_client_request_id_is_kept(http, gw):
    data = await echoed(
        http,
        "POST",
        gw + "/api/razorpay/webhook",
        data=b"{}",
        headers={"X-Request-Id": "abc.DEF_1-2"},
    )
    assert data["headers"]["x-request-id"] == "abc.DEF_1-2"


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "semi;colon", "é"])
async def test_an_unsafe_client_request_id_is_replaced(http, gw, bad):
    resp, _ = await call(
        http, "GET", gw + "/api/razorpay/payment-status/1", headers={"X-Request-Id": bad}
    )
    assert resp.headers["X-Request-Id"] != bad
    assert len(resp.headers["X-Request-Id"]) == 32


# --- body size ------------------------------------------------------------------------


async def test_body_size_limit_with_content_length(http, start_gateway):
    gw = await start_gateway(gateway_max_body_bytes=1024)
    data = await echoed(http, "POST", gw + "/api/razorpay/webhook", data=b"x" * 1024)
    assert data["body"] == b"x" * 1024
    resp, _ = await call(http, "POST", gw + "/api/razorpay/webhook", data=b"x" * 1025)
    assert resp.status == 413
    assert await resp.json() == {"message": "Request body too large"}


async def test_body_size_limit_on_a_chunked_body(http, start_gateway):
    gw = await start_gateway(gateway_max_body_bytes=1024)

    async def chunks(total: int):
        for _ in range(total // 256):
            yield b"y" * 256

    data = await echoed(http, "POST", gw + "/api/razorpay/webhook", data=chunks(1024))
    assert data["body"] == b"y" * 1024
    assert "content-length" in data["headers"]  # re-sent whole, not chunked
    resp, _ = await call(http, "POST", gw + "/api/razorpay/create-order", data=chunks(4096))
    assert resp.status == 413
    assert await resp.json() == {"message": "Request body too large"}


# --- upstream failures ------------------------------------------------------------------


async def test_unreachable_upstream_is_503(http, start_gateway):
    gw = await start_gateway(order_service_url=f"http://127.0.0.1:{unused_port()}")
    resp, _ = await call(http, "POST", gw + "/api/razorpay/create-order", data=b"{}")
    assert resp.status == 503
    assert await resp.json() == {"message": "Service temporarily unavailable"}


async def test_unresolvable_upstream_is_503(http, start_gateway):
    gw = await start_gateway(webhook_service_url="http://upstream.invalid")
    resp, _ = await call(http, "POST", gw + "/api/razorpay/webhook", data=b"{}")
    assert resp.status == 503


# --- services on this machine, on Unix sockets (SOCKET_DIR) --------------------------------


async def test_with_a_socket_dir_each_service_is_reached_on_its_processes_sockets(
        http, start_gateway, tmp_path):
    """The URLs lead nowhere: every answer came through a socket, from both processes of
    each service; the readiness checks take the same way."""
    runners = []
    for service, name in (("order_service", "order"), ("verification_service", "verification"),
                          ("webhook_service", "webhook")):
        for worker in (1, 2):
            runner = web.AppRunner(make_upstream(f"{name}-{worker}"))
            await runner.setup()
            await web.UnixSite(runner, str(tmp_path / f"{service}-{worker}.sock")).start()
            runners.append(runner)
    nowhere = f"http://127.0.0.1:{unused_port()}"
    gw = await start_gateway(socket_dir=str(tmp_path), workers=2, order_service_url=nowhere,
                             verification_service_url=nowhere, webhook_service_url=nowhere)
    try:
        for path, service in (("/api/razorpay/create-order", "order"),
                              ("/api/razorpay/verify-payment", "verification"),
                              ("/api/razorpay/webhook", "webhook")):
            answers = await asyncio.gather(*(echoed(http, "POST", gw + path, data=b"{}")
                                             for _ in range(4)))
            assert {a["service"] for a in answers} == {f"{service}-1", f"{service}-2"}
            assert {a["path"] for a in answers} == {path}
        resp, body = await call(http, "GET", gw + "/readyz")
        assert resp.status == 200, body
    finally:
        for runner in runners:
            await runner.cleanup()
    # Every process gone: not reachable, which the gateway's /readyz reports but does not
    # take the gateway out of rotation for (every gateway shares the services behind it).
    resp, _ = await call(http, "POST", gw + "/api/razorpay/create-order", data=b"{}")
    assert resp.status == 503
    resp, body = await call(http, "GET", gw + "/readyz")
    checks = json.loads(body)["checks"]
    assert resp.status == 200 and checks["order_service"].startswith("degraded: "), body


async def test_slow_upstream_is_504(http, start_gateway):
    gw = await start_gateway(gateway_upstream_timeout_seconds=0.2)
    started = time.monotonic()
    resp, _ = await call(http, "GET", gw + "/api/razorpay/payment-status/1?delay=1.0")
    assert resp.status == 504
    assert await resp.json() == {"message": "Upstream service timed out"}
    assert time.monotonic() - started < 0.9


async def test_the_service_is_told_how_long_the_gateway_waits(http, start_gateway):
    gw = await start_gateway(gateway_upstream_timeout_seconds=7.5)
    data = await echoed(http, "GET", gw + "/api/razorpay/payment-status/1",
                        headers={"X-A6-Deadline-Ms": "999999"})  # a client's is replaced
    assert data["headers"]["x-a6-deadline-ms"] == "7500"


async def test_a_lane_full_of_slow_calls_leaves_the_others_answering(http, start_gateway):
    # 3 connections per lane: 12 creates stuck on a slow upstream fill theirs many times
    # over; webhooks, payment-status and verify have pools of their own.
    gw = await start_gateway(gateway_lane_connections=3, gateway_webhook_connections=3)
    stuck = [asyncio.create_task(call(http, "POST", gw + "/api/razorpay/create-order?delay=3",
                                      json={})) for _ in range(12)]
    await asyncio.sleep(0.5)
    for method, path in (("POST", "/api/razorpay/webhook"),
                         ("GET", "/api/razorpay/payment-status/1"),
                         ("POST", "/api/razorpay/verify-payment")):
        started = time.monotonic()
        assert await status_of(http, method, gw + path, data=b"{}") == 200
        assert time.monotonic() - started < 1.0, path
    assert not any(task.done() for task in stuck)  # they are still waiting, as meant
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)


async def test_slow_admin_calls_leave_the_webhooks_their_connections(http, start_gateway):
    # refunds and cancellations wait on Razorpay, a ledger streams for long: a lane of their
    # own, so Razorpay's webhooks never queue behind them
    gw = await start_gateway(gateway_lane_connections=3, gateway_webhook_connections=3)
    stuck = [asyncio.create_task(call(http, "POST", gw + "/api/razorpay/refunds?delay=3",
                                      json={})) for _ in range(12)]
    await asyncio.sleep(0.5)
    started = time.monotonic()
    assert await status_of(http, "POST", gw + "/api/razorpay/webhook", data=b"{}") == 200
    assert time.monotonic() - started < 1.0
    assert not any(task.done() for task in stuck)
    for task in stuck:
        task.cancel()
    await asyncio.gather(*stuck, return_exceptions=True)


# --- rate limits --------------------------------------------------------------------------


def from_client(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def test_429_with_retry_after_after_the_limit(http, start_gateway):
    gw = await start_gateway(rate_limit_create_order=3, rate_limit_window_seconds=60)
    url = gw + "/api/razorpay/create-order"
    statuses = [(await call(http, "POST", url, data=b"{}"))[0].status for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp, _ = await call(http, "POST", url, data=b"{}")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "20"  # GCRA: one more every 60 / 3 seconds
    assert await resp.json() == {"message": "Too many requests. Try again in 20 seconds."}
    assert resp.headers["X-Request-Id"]


async def test_limits_are_per_client_behind_a_trusted_proxy(http, start_gateway):
    gw = await start_gateway(gateway_trusted_proxies="127.0.0.1", rate_limit_payment_status=2)
    url = gw + "/api/razorpay/payment-status/9"
    alice = [await status_of(http, "GET", url, headers=from_client("198.51.100.1")) for _ in "123"]
    # bob's chain carries a forged left-hand entry; the rightmost untrusted hop counts
    bob_xff = from_client("6.6.6.6, 198.51.100.2")
    bob = [await status_of(http, "GET", url, headers=bob_xff) for _ in "12"]
    assert alice == [200, 200, 429]
    assert bob == [200, 200]


async def test_xff_from_an_untrusted_peer_is_ignored(http, start_gateway):
    gw = await start_gateway(gateway_trusted_proxies="", rate_limit_payment_status=2)
    url = gw + "/api/razorpay/payment-status/9"
    statuses = [
        (await call(http, "GET", url, headers=from_client(f"198.51.100.{i}")))[0].status
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]


async def test_verify_payment_and_callback_share_one_budget(http, start_gateway):
    gw = await start_gateway(rate_limit_verify_payment=2)
    verify = (await call(http, "POST", gw + "/api/razorpay/verify-payment", data=b"{}"))[0]
    callback = (await call(http, "POST", gw + "/api/razorpay/callback", data=b"a=1"))[0]
    assert (verify.status, callback.status) == (200, 303)
    assert (await call(http, "POST", gw + "/api/razorpay/callback", data=b"a=1"))[0].status == 429
    assert (await call(http, "POST", gw + "/api/razorpay/verify-payment"))[0].status == 429
    # other groups are untouched
    assert (await call(http, "POST", gw + "/api/razorpay/create-order"))[0].status == 200


async def test_the_webhook_is_never_limited(http, start_gateway):
    gw = await start_gateway(
        rate_limit_create_order=1, rate_limit_verify_payment=1, rate_limit_payment_status=1
    )
    statuses = {
        (await call(http, "POST", gw + "/api/razorpay/webhook", data=b"{}"))[0].status
        for _ in range(30)
    }
    assert statuses == {200}


# --- authentication ------------------------------------------------------------------------


@pytest_asyncio.fixture
async def gw_auth(start_gateway):
    return await start_gateway(auth_jwt_secret=JWT_SECRET)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/razorpay/create-order"),
        ("POST", "/api/razorpay/verify-payment"),
        ("GET", "/api/razorpay/payment-status/5"),
    ],
)
async def test_auth_on_customer_endpoints_need_a_valid_token(http, gw_auth, method, path):
    resp, _ = await call(http, method, gw_auth + path, data=b"{}" if method == "POST" else None)
    assert resp.status == 401
    assert await resp.json() == {"message": "Authentication required"}
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    for headers in (bearer(exp_in=-10), {"Authorization": "Bearer x.y.z"}):
        resp, _ = await call(http, method, gw_auth + path, headers=headers)
        assert resp.status == 401
        assert await resp.json() == {"message": "Invalid or expired token"}


async def test_auth_on_forwards_the_authenticated_customer_not_the_forged_one(http, gw_auth):
    headers = bearer("45") | {"X-A6-Customer-Id": "999"}
    for method, path, body in [
        ("POST", "/api/razorpay/create-order", b'{"booking_id": 1, "customer_id": 45}'),
        ("POST", "/api/razorpay/verify-payment", b'{"customer_id": "45"}'),
        ("GET", "/api/razorpay/payment-status/5", None),
    ]:
        data = await echoed(http, method, gw_auth + path, data=body, headers=headers)
        assert data["headers"]["x-a6-customer-id"] == "45"
        assert "authorization" not in data["headers"]


@pytest.mark.parametrize("path", ["/api/razorpay/create-order", "/api/razorpay/verify-payment"])
async def test_auth_on_a_body_naming_another_customer_is_403(http, gw_auth, path):
    resp, _ = await call(
        http, "POST", gw_auth + path, data=b'{"customer_id": 46}', headers=bearer("45")
    )
    assert resp.status == 403
    assert await resp.json() == {"message": "Forbidden"}


async def test_auth_on_a_non_json_body_is_forwarded_for_the_service_to_refuse(http, gw_auth):
    url = gw_auth + "/api/razorpay/create-order"
    data = await echoed(http, "POST", url, data=b"customer_id=46", headers=bearer("45"))
    assert data["body"] == b"customer_id=46"


async def test_auth_on_webhook_and_callback_need_no_token(http, gw_auth):
    headers = {"X-A6-Customer-Id": "999"}
    data = await echoed(
        http, "POST", gw_auth + "/api/razorpay/webhook", data=b"{}", headers=headers
    )
    assert "x-a6-customer-id" not in data["headers"]
    resp, _ = await call(http, "POST", gw_auth + "/api/razorpay/callback", data=b"a=1")
    assert resp.status == 303


async def test_auth_off_a_client_sent_customer_id_is_stripped(http, gw):
    for method, path in [
        ("POST", "/api/razorpay/create-order"),
        ("POST", "/api/razorpay/verify-payment"),
        ("GET", "/api/razorpay/payment-status/5"),
        ("POST", "/api/razorpay/webhook"),
    ]:
        body = b'{"customer_id": 1}' if method == "POST" else None
        data = await echoed(http, method, gw + path, data=body, headers={"X-A6-Customer-Id": "999"})
        assert "x-a6-customer-id" not in data["headers"]


# --- access log ------------------------------------------------------------------------------


async def test_one_access_line_per_request_without_query_or_secrets(http, gw, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.access")
    resp, _ = await call(
        http,
        "GET",
        gw + "/api/razorpay/payment-status/77?token=SECRETQUERY",
        headers={"X-Razorpay-Signature": "SIGNATUREVALUE", "X-Request-Id": "log-test-1"},
    )
    lines = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(lines) == 1
    ctx = lines[0].ctx
    assert ctx["method"] == "GET"
    assert ctx["route"] == "payment_status"
    assert ctx["status"] == resp.status == 200
    assert ctx["request_id"] == "log-test-1"
    assert ctx["client"] == "127.0.0.1"
    assert isinstance(ctx["duration_ms"], float)
    text = repr(lines[0].__dict__)
    assert "SECRETQUERY" not in text and "SIGNATUREVALUE" not in text


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/healthz", "healthz"),
        ("POST", "/api/razorpay/webhook", "webhook"),
        ("GET", "/nope", "unmatched"),
    ],
)
async def test_access_line_names_the_route(http, gw, caplog, method, path, route):
    caplog.set_level(logging.DEBUG, logger="gateway.access")
    await call(http, method, gw + path)
    (line,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert line.ctx["route"] == route


async def test_hot_routes_log_only_their_failures_at_info(http, gw, caplog):
    caplog.set_level(logging.INFO, logger="gateway.access")
    resp, _ = await call(http, "GET", gw + "/api/razorpay/payment-status/78")
    assert resp.status == 200
    assert not [r for r in caplog.records if r.name == "gateway.access"]
    resp, _ = await call(http, "GET", gw + "/api/razorpay/create-order")  # not a hot route
    (line,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert line.levelno == logging.INFO and line.ctx["status"] == resp.status == 405


async def test_checkout_landing_pages_show_only_fixed_text(gw, http):
    for sent in ("<script>x</script>", "Call 1800-FAKE-SUPPORT to get your refund"):
        async with http.get(f"{gw}/payment/failure", params={"reason": sent}) as r:
            assert r.status == 200 and r.content_type == "text/html"
            text = await r.text()
        assert "script" not in text and "FAKE" not in text and "Reason: unknown" in text
    async with http.get(f"{gw}/payment/failure", params={"reason": "not_captured"}) as r:
        assert "not captured" in await r.text()
    async with http.get(f"{gw}/payment/success", params={"booking_id": "42"}) as r:
        assert "Booking 42 is paid" in await r.text()
    async with http.get(f"{gw}/payment/success", params={"booking_id": "Call 1800"}) as r:
        assert "1800" not in await r.text()


# --- who may call what: admin networks, failed admin tokens, private endpoints ---------

PUBLIC_CLIENT = from_client("198.51.100.7")
REFUND = "/api/razorpay/refunds"
WRONG_TOKEN = {"Authorization": "Bearer not-the-token"}  # the doubles answer ?status=401


async def test_admin_calls_only_from_admin_networks(http, start_gateway):
    gw = await start_gateway(gateway_trusted_proxies="127.0.0.1")
    resp, body = await call(http, "POST", gw + REFUND, data=b"{}", headers=PUBLIC_CLIENT)
    assert resp.status == 403 and json.loads(body)["message"]
    assert await status_of(http, "POST", gw + REFUND, data=b"{}",
                           headers=from_client("10.1.2.3")) == 200
    # customer routes stay open to everyone
    assert await status_of(http, "POST", gw + "/api/razorpay/create-order", data=b"{}",
                           headers=PUBLIC_CLIENT) == 200


async def test_failed_admin_tokens_are_limited_per_client(http, start_gateway):
    gw = await start_gateway(gateway_trusted_proxies="127.0.0.1", rate_limit_failed_auth=3)
    me, other = from_client("10.0.0.8"), from_client("10.0.0.9")
    wrong = [await status_of(http, "POST", gw + REFUND + "?status=401", data=b"{}",
                             headers=me | WRONG_TOKEN) for _ in range(3)]
    assert wrong == [401, 401, 401]
    resp, body = await call(http, "POST", gw + REFUND, data=b"{}", headers=me)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert json.loads(body)["message"]
    assert await status_of(http, "POST", gw + REFUND, data=b"{}", headers=other) == 200
    # successful calls count nothing
    assert all([await status_of(http, "POST", gw + REFUND, data=b"{}", headers=other) == 200
                for _ in range(5)])


async def test_staff_scans_come_from_anywhere_but_failed_staff_tokens_are_limited(
        http, start_gateway):
    gw = await start_gateway(gateway_trusted_proxies="127.0.0.1", rate_limit_failed_auth=2)
    scan = gw + "/api/passes/scan"
    # the counter's phones are not on the office network
    assert await status_of(http, "POST", scan, data=b"{}", headers=PUBLIC_CLIENT) == 200
    wrong = [await status_of(http, "POST", scan + "?status=401", data=b"{}",
                             headers=PUBLIC_CLIENT | WRONG_TOKEN) for _ in range(2)]
    assert wrong == [401, 401]
    resp, body = await call(http, "POST", scan, data=b"{}", headers=PUBLIC_CLIENT)
    assert resp.status == 429 and json.loads(body)["message"]


async def test_calls_without_a_token_cost_no_failed_token_budget(http, start_gateway):
    """Any page open on a counter phone can make it POST with no token (no-cors): those
    401s are no guesses, so they must not lock the counter's own IP out."""
    gw = await start_gateway(gateway_trusted_proxies="127.0.0.1", rate_limit_failed_auth=2)
    scan = gw + "/api/passes/scan"
    tokenless = [await status_of(http, "POST", scan + "?status=401", data=b"{}",
                                 headers=PUBLIC_CLIENT) for _ in range(5)]
    assert tokenless == [401] * 5
    assert await status_of(http, "POST", scan, data=b"{}",
                           headers=PUBLIC_CLIENT | {"Authorization": "Bearer right"}) == 200
    # guesses with a token still spend it
    wrong = [await status_of(http, "POST", scan + "?status=401", data=b"{}",
                             headers=PUBLIC_CLIENT | WRONG_TOKEN) for _ in range(3)]
    assert wrong == [401, 401, 429]


async def test_metrics_and_readiness_detail_only_for_admin_networks(http, start_gateway):
    gw = await start_gateway(admin_allowed_networks="10.255.255.0/24")  # not loopback
    assert await status_of(http, "GET", gw + "/metrics") == 404
    resp, body = await call(http, "GET", gw + "/readyz")
    assert set(json.loads(body)) <= {"status", "message"}
    inside = await start_gateway()  # the default: loopback and private ranges
    assert await status_of(http, "GET", inside + "/metrics") == 200
    resp, body = await call(http, "GET", inside + "/readyz")
    assert "checks" in json.loads(body)


# --- payment-status calls shared (GATEWAY_STATUS_BATCH, on by default) ------------------


SLOW, CRASH = "9001", "9002"  # booking ids the gateway lets through, the double acts on


def make_status_batch_double(calls: list) -> web.Application:
    """order_service's batch route: answers each read with what it was asked; a read of
    SLOW makes the whole call slow, CRASH makes it a crashed service's HTML page."""

    async def batch(request: web.Request) -> web.Response:
        reads = (await request.json())["reads"]
        calls.append(reads)
        asked = {raw for raw, _ in reads}
        if SLOW in asked:
            await asyncio.sleep(1.0)
        if CRASH in asked:
            return web.Response(status=500, text="<html>Traceback</html>",
                                content_type="text/html")
        return web.json_response({"answers": [
            [404 if raw == "404" else 200, json.dumps({"read": raw, "customer": customer})]
            for raw, customer in reads]})

    app = web.Application()
    app.router.add_post(status_batch.PATH, batch)
    return app


@pytest_asyncio.fixture
async def batching_gateway(start_gateway):
    """`await batching_gateway(**settings)` -> (gateway URL, the calls the double got)."""
    calls: list = []
    double = TestServer(make_status_batch_double(calls), host="127.0.0.1")
    await double.start_server()

    async def start(**overrides):
        url = await start_gateway(order_service_url=str(double.make_url("")).rstrip("/"),
                                  gateway_status_batch=True, **overrides)
        return url, calls

    yield start
    await double.close()


async def test_status_requests_share_calls_and_each_gets_its_own_answer(http, batching_gateway):
    gw, calls = await batching_gateway(auth_jwt_secret=JWT_SECRET)
    asked = [str(n) for n in range(1, 31)] + ["404"]
    answers = await asyncio.gather(*(
        call(http, "GET", f"{gw}/api/razorpay/payment-status/{raw}", headers=bearer("45"))
        for raw in asked))
    for raw, (resp, body) in zip(asked, answers, strict=True):
        assert resp.status == (404 if raw == "404" else 200)
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.headers["X-Request-Id"]
        assert json.loads(body) == {"read": raw, "customer": "45"}  # the token's customer
    assert sorted(raw for reads in calls for raw, _ in reads) == sorted(asked)
    assert len(calls) < len(asked)


async def test_a_failed_call_gives_each_of_its_requests_a_json_error(http, batching_gateway):
    gw, _ = await batching_gateway()
    resp, _ = await call(http, "GET", f"{gw}/api/razorpay/payment-status/{CRASH}")
    assert resp.status == 500
    assert await resp.json() == {"message": "Internal server error"}


async def test_a_slow_call_is_504_for_its_requests(http, batching_gateway):
    gw, _ = await batching_gateway(gateway_upstream_timeout_seconds=0.2)
    started = time.monotonic()
    # two slow calls in flight; "7" waits for one of them past its own deadline
    answers = await asyncio.gather(*(
        call(http, "GET", f"{gw}/api/razorpay/payment-status/{raw}")
        for raw in (SLOW, SLOW, "7")))
    assert [resp.status for resp, _ in answers] == [504, 504, 504]
    assert {json.loads(body)["message"] for _, body in answers} == {
        "Upstream service timed out"}
    assert time.monotonic() - started < 0.9
