"""The admin API at the gateway: only from ADMIN_ALLOWED_NETWORKS, and a client whose
admin (or staff) tokens keep failing is refused (429) before its next guess reaches order_service.
Only a request that presented a token counts as a failure: one without a token is refused by
the service (401) and costs nothing.

Failures are counted in the rate limiter's FAILED_AUTH group (through Redis when REDIS_URL
is set, so every gateway sees them); a call is refused while that client's failure budget
is spent. Successful calls count nothing: the A6 Cars backend is never slowed down.
"""

from __future__ import annotations

from aiohttp import web

from gateway import keys
from gateway.client_ip import rate_limit_key
from gateway.errors import FORBIDDEN, json_error, too_many_requests
from shared import metrics, private_access

FAILED_AUTH = "failed_auth"  # the rate limiter's group for refused admin or staff tokens


async def refused(request: web.Request, route_path: str, *,
                  private_only: bool = True) -> web.Response | None:
    """An answer for a call that must not reach the service, or None to go on. The staff
    API is called from the counter's phones, wherever they are: `private_only=False` keeps
    only the failed-token budget."""
    if private_only and not private_access.trusted_caller(request):
        return json_error(403, FORBIDDEN)
    decision = await request.app[keys.LIMITER].peek(FAILED_AUTH, client_key(request))
    if not decision.allowed:
        metrics.RATE_LIMITED.labels(route_path).inc()
        return too_many_requests(decision.retry_after_seconds)
    return None


async def count_if_refused(request: web.Request, response: web.StreamResponse) -> None:
    """A 401 from the service to a request that presented a token: the token was wrong; it
    counts against this client. A request with no token guesses nothing: any page open on a
    counter phone can send one (a no-cors POST carries no Authorization header), so counting
    it would let that page lock the counter's IP out."""
    if response.status == 401 and request.headers.get("Authorization"):
        await request.app[keys.LIMITER].check(FAILED_AUTH, client_key(request))


def client_key(request: web.Request) -> str:
    return rate_limit_key(request[keys.CLIENT])
