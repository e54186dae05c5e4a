"""The public routes, as a table, and the one proxy handler they share."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway import admin_guard, keys, pages, staff_page
from gateway.auth import AuthError, authenticate, body_customer_matches
from gateway.body import read_body, reject_declared_oversize
from gateway.client_ip import rate_limit_key
from gateway.errors import FORBIDDEN, too_many_requests
from gateway.proxy import ADMIN_HEADERS, response_of, send, upstream_headers, upstream_target
from gateway.status_batch import read_status
from shared import metrics
from shared.deadline import DEADLINE_HEADER, deadline_header
from shared.http import HttpError, health, json_error
from shared.settings import Settings

# Rate-limit groups; verify-payment and the checkout callback verify the same way, so
# they share one budget.
CREATE_ORDER = "create_order"
VERIFY_PAYMENT = "verify_payment"
PAYMENT_STATUS = "payment_status"
PASS_SCAN = "pass_scan"


WEBHOOK_LANE = "webhook"
ADMIN_LANE = "admin"


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    upstream_setting: str  # the Settings field holding the service's base URL
    limit_group: str | None  # None: never rate limited (Razorpay's webhook)
    customer_auth: bool  # needs the bearer token when auth is switched on
    body_names_customer: bool  # the JSON body carries a customer_id to check
    admin: bool = False  # the admin API: its service checks the admin token itself
    staff: bool = False  # the counter's API: its service checks the staff token itself

    @property
    def lane(self) -> str:
        """Its upstream connection pool: one per rate-limit group (verify and the callback
        verify alike), the admin API's (refunds wait on Razorpay, a ledger streams long),
        and the webhook's own."""
        return self.limit_group or (ADMIN_LANE if self.admin else WEBHOOK_LANE)


ROUTES = (
    Route("create_order", "POST", "/api/razorpay/create-order",
          "order_service_url", CREATE_ORDER, True, True),
    Route("payment_status", "GET", "/api/razorpay/payment-status/{booking_id}",
          "order_service_url", PAYMENT_STATUS, True, False),
    Route("verify_payment", "POST", "/api/razorpay/verify-payment",
          "verification_service_url", VERIFY_PAYMENT, True, True),
    Route("callback", "POST", "/api/razorpay/callback",
          "verification_service_url", VERIFY_PAYMENT, False, False),
    Route("webhook", "POST", "/api/razorpay/webhook",
          "webhook_service_url", None, False, False),
    Route("cancel_booking", "POST", "/api/razorpay/bookings/{booking_id}/cancel",
          "order_service_url", None, False, False, admin=True),
    Route("refund", "POST", "/api/razorpay/refunds",
          "order_service_url", None, False, False, admin=True),
    Route("pass_scan", "POST", "/api/passes/scan",
          "order_service_url", PASS_SCAN, False, False, staff=True),
    Route("list_disputes", "GET", "/api/razorpay/disputes",
          "order_service_url", None, False, False, admin=True),
    Route("contest_dispute", "POST", "/api/razorpay/disputes/{dispute_id}/contest",
          "order_service_url", None, False, False, admin=True),
    Route("accept_dispute", "POST", "/api/razorpay/disputes/{dispute_id}/accept",
          "order_service_url", None, False, False, admin=True),
    Route("settlements", "GET", "/api/razorpay/settlements",
          "order_service_url", None, False, False, admin=True),
    Route("ledger", "GET", "/api/razorpay/ledger.csv",
          "order_service_url", None, False, False, admin=True),
)  # fmt: skip


LANES = tuple(dict.fromkeys(route.lane for route in ROUTES))


def _authenticated_customer(request: web.Request, route: Route, settings: Settings) -> str | None:
    if not (route.customer_auth and settings.auth_jwt_secret):
        return None
    try:
        return authenticate(request.headers.get("Authorization"), settings.auth_jwt_secret,
                            audience=settings.auth_jwt_audience, issuer=settings.auth_jwt_issuer)
    except AuthError as exc:
        raise HttpError(exc.message, 401, {"WWW-Authenticate": "Bearer"}) from None


def make_proxy_handler(route: Route):
    async def handler(request: web.Request) -> web.Response:
        settings = request.app[keys.SETTINGS]
        reject_declared_oversize(request, settings.gateway_max_body_bytes)
        if route.limit_group is not None:
            client = rate_limit_key(request[keys.CLIENT])
            decision = await request.app[keys.LIMITER].check(route.limit_group, client)
            if not decision.allowed:
                metrics.RATE_LIMITED.labels(route.path).inc()
                return too_many_requests(decision.retry_after_seconds)
        if (route.admin or route.staff) and (refusal := await admin_guard.refused(
                request, route.path, private_only=route.admin)):
            return refusal
        customer_id = _authenticated_customer(request, route, settings)
        body = await read_body(
            request,
            settings.gateway_max_body_bytes,
            settings.gateway_body_read_timeout_seconds,
        )
        if customer_id is not None and route.body_names_customer:
            if not body_customer_matches(body, customer_id):
                return json_error(403, FORBIDDEN)
        timeout = settings.gateway_upstream_timeout_seconds
        if route.name == "payment_status" and settings.gateway_status_batch:
            return await read_status(request, customer_id, timeout)  # shares a call
        headers = upstream_headers(request.headers, request[keys.REQUEST_ID], customer_id,
                                   ADMIN_HEADERS if route.admin or route.staff else ())
        # The service stops working on the request when we stop waiting for it.
        headers.append((DEADLINE_HEADER, deadline_header(timeout)))
        response = response_of(await send(
            request.app[keys.LANE_POOLS][route.lane],
            request.app[keys.UPSTREAMS][route.upstream_setting],
            request.method, upstream_target(request), headers, body, timeout))
        if route.admin or route.staff:
            await admin_guard.count_if_refused(request, response)
        return response

    return handler


def setup_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, make_proxy_handler(route), name=route.name)
    app.router.add_route("GET", "/healthz", health, name="healthz")
    app.router.add_route("GET", "/payment/success", pages.payment_success, name="paid_page")
    app.router.add_route("GET", "/payment/failure", pages.payment_failure, name="failed_page")
    staff_page.setup(app)
