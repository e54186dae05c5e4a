"""`GET /readyz`: 200 when everything this process depends on answers, else 503 with which
check failed. `/healthz` stays liveness only (the process runs); readiness is what a load
balancer or Kubernetes uses to send traffic, so a service whose database is away is taken
out of rotation instead of answering 503s.

Anyone can add a check: `add_check(app, "redis", check)` where `check(app)` returns (or is
a coroutine that returns) normally when ready, and raises or returns False when not. Checks
run concurrently, each with a timeout, on every request to /readyz.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from aiohttp import web

from shared import private_access

Check = Callable[[web.Application], Awaitable[object] | object]

CHECKS = web.AppKey("readiness_checks", dict)
CHECK_TIMEOUT_SECONDS = 2.0


class NotReady(Exception):
    """Raise from a check with a short reason (no secrets, no ids: it is served as JSON)."""


class Degraded(Exception):
    """Raise from a check for a dependency the service works without (e.g. the gateway's
    Redis: it fails open): its reason is shown as `degraded: …`, the service stays ready."""


DEGRADED = "degraded: "


def install(app: web.Application) -> None:
    app[CHECKS] = {}
    app.router.add_get("/readyz", readyz, name="readyz", allow_head=False)


def add_check(app: web.Application, name: str, check: Check) -> None:
    """Register a readiness check; may be called from a cleanup_ctx (before or after start)."""
    if CHECKS not in app:
        raise RuntimeError("readiness.install(app) first")
    app[CHECKS][name] = check


async def _run_one(app: web.Application, check: Check) -> str:
    try:
        answer = check(app)
        if inspect.isawaitable(answer):
            answer = await asyncio.wait_for(answer, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return "timeout"
    except NotReady as exc:
        return str(exc) or "not ready"
    except Degraded as exc:
        return DEGRADED + str(exc)
    except Exception as exc:  # whatever the dependency raised: its type says enough
        return type(exc).__name__
    return "not ready" if answer is False else "ok"


async def readyz(request: web.Request) -> web.Response:
    checks = dict(request.app[CHECKS])  # as of now: one added meanwhile runs next time
    answers = await asyncio.gather(*(_run_one(request.app, check) for check in checks.values()))
    results = dict(zip(checks, answers, strict=True))  # name -> "ok" | reason
    failed = [name for name, result in results.items()
              if result != "ok" and not result.startswith(DEGRADED)]
    body: dict = {"status": "not ready" if failed else "ready"}
    if private_access.trusted_caller(request):  # what is inside: for the operator only
        body["checks"] = results
        if failed:  # like every error answer here, it carries a `message`
            body["message"] = "Not ready: " + ", ".join(failed)
    return web.json_response(
        body, status=503 if failed else 200, headers={"Cache-Control": "no-store"})
