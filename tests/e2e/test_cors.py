"""CORS through the live gateway: the frontend's three endpoints answer preflight and carry
Access-Control-Allow-Origin for the listed origins only; nothing else answers cross-origin.
The e2e stack lists http://shop.example and http://localhost:3000."""

import re

import pytest

from gateway.app import create_app
from gateway.cors import FRONTEND_ROUTES
from shared.settings import load_settings
from testkit.api_client import call

pytestmark = pytest.mark.e2e

ALLOWED = "http://shop.example"
OTHER = "http://evil.example"
FRONTEND = [("POST", "/api/razorpay/create-order"), ("POST", "/api/razorpay/verify-payment"),
            ("GET", "/api/razorpay/payment-status/987654321")]  # a booking no test makes


def other_routes() -> list[tuple[str, str]]:
    """Every route the gateway serves but the frontend's three (webhook, callback, admin,
    staff, pages, probes), read from the app itself so a route added later is covered."""
    app = create_app(load_settings(cors_allowed_origins=ALLOWED))
    routes = []
    for route in app.router.routes():
        if route.method in ("OPTIONS", "HEAD") or route.resource.name in FRONTEND_ROUTES:
            continue
        path = re.sub(r"\{[a-z_]+\}", "1", route.resource.canonical)
        routes.append((route.method, path))
    return sorted(set(routes))


async def preflight(http, stack, path, origin, method="POST", headers="content-type"):
    return await call(http, "OPTIONS", stack.gateway + path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


@pytest.mark.parametrize("method,path", FRONTEND)
async def test_frontend_endpoints_answer_preflight_for_a_listed_origin(stack, http, method,
                                                                       path):
    for origin in (ALLOWED, "http://localhost:3000"):
        status, _, headers = await preflight(http, stack, path, origin, method,
                                             "content-type,authorization")
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == origin
        assert headers["Access-Control-Allow-Methods"] == method
        allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == {"content-type", "authorization"}
        assert "Origin" in headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in headers


@pytest.mark.parametrize("method,path", FRONTEND)
async def test_frontend_answers_carry_the_origin_even_when_refusing(stack, http, method, path):
    """A 400 or 404 must reach the page too, or it cannot show the seed's `message`."""
    kwargs = {"json": {}} if method == "POST" else {}
    status, body, headers = await call(http, method, stack.gateway + path,
                                       headers={"Origin": ALLOWED}, **kwargs)
    assert status in (400, 404) and body["message"]
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "X-Request-Id" in headers["Access-Control-Expose-Headers"]
    assert "Origin" in headers["Vary"]


@pytest.mark.parametrize("method,path", FRONTEND)
async def test_an_unlisted_origin_gets_no_cors_headers(stack, http, method, path):
    status, _, headers = await preflight(http, stack, path, OTHER, method)
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    kwargs = {"json": {}} if method == "POST" else {}
    _, _, headers = await call(http, method, stack.gateway + path, headers={"Origin": OTHER},
                               **kwargs)
    assert "Access-Control-Allow-Origin" not in headers
    # a listed origin's look-alikes are other origins
    for near in ("https://shop.example", "http://shop.example:8080", "http://shop.example.evil",
                 "null"):
        status, _, headers = await preflight(http, stack, path, near, method)
        assert status == 403 and "Access-Control-Allow-Origin" not in headers, near


async def test_preflight_refuses_headers_and_methods_the_frontend_does_not_use(stack, http):
    path = "/api/razorpay/create-order"
    status, _, headers = await preflight(http, stack, path, ALLOWED, "POST", "x-admin-token")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    status, _, headers = await preflight(http, stack, path, ALLOWED, "DELETE")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("method,path", other_routes())
async def test_no_other_route_answers_cross_origin(stack, http, method, path):
    status, body, headers = await preflight(http, stack, path, ALLOWED, method)
    assert status == 405 and body["message"]
    assert not any(h.lower().startswith("access-control-") for h in headers)
    status, _, headers = await call(http, method, stack.gateway + path,
                                    headers={"Origin": ALLOWED}, data=b"")
    assert status < 500
    assert not any(h.lower().startswith("access-control-") for h in headers)
