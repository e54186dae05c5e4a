"""What every HTTP service's app factory wires: settings, the pool, background tasks, run."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg
import uvloop
from aiohttp import web
from pydantic import ValidationError

from shared import local_sockets, metrics, private_access, readiness
from shared.db import FairPool, create_pool
from shared.deadline import deadline_middleware
from shared.http import error_middleware, health
from shared.logging import setup_logging
from shared.outbox import OutboxRelay
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from shared.razorpay_client import RazorpayClient

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", FairPool)
RAZORPAY: web.AppKey[RazorpayClient] = web.AppKey("razorpay")


def new_app(settings: Settings, service: str) -> web.Application:
    """The base every service builds on: settings, the pool, /healthz (alive), /readyz
    (database answers, plus whatever the service adds), /metrics."""
    app = web.Application(
        middlewares=[deadline_middleware, error_middleware], client_max_size=1024 * 1024,
        handler_args=metrics.handler_args(service, settings.metrics_enabled))
    app[SETTINGS] = settings
    private_access.install(app, settings.admin_allowed_networks, private_access.socket_peer)
    app.router.add_get("/healthz", health)
    readiness.install(app)
    metrics.install(app, settings.metrics_enabled)
    app.cleanup_ctx.append(_pool_ctx)
    return app


async def connect_pool(settings: Settings) -> FairPool:
    """Wait for PostgreSQL at start-up instead of crashing: it may start after us."""
    delay = 0.5
    while True:
        try:
            return await create_pool(settings)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("database not reachable yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    app[POOL] = await connect_pool(app[SETTINGS])
    readiness.add_check(app, "database", database_answers)
    yield
    await app[POOL].close()


async def razorpay_ctx(app: web.Application) -> AsyncIterator[None]:
    # Imported here, by the services that call Razorpay: the SDK and requests are memory
    # a process that never does (the gateway, the notifier) should not hold.
    from shared.razorpay_client import RazorpayClient

    app[RAZORPAY] = RazorpayClient(app[SETTINGS])
    yield
    app[RAZORPAY].close()


def background(name: str, factory: Callable[[web.Application], Awaitable[None]]):
    """A cleanup_ctx that runs `factory(app)` as a task for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(factory(app), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


async def database_answers(app: web.Application) -> None:
    async with app[POOL].acquire(timeout=readiness.CHECK_TIMEOUT_SECONDS) as conn:
        await conn.fetchval("SELECT 1")


async def run_outbox_relay(app: web.Application) -> None:
    relay = OutboxRelay(app[POOL], app[SETTINGS])

    def broker(_: web.Application) -> None:
        # A producer serves without the broker: its events wait in the outbox. Not ready
        # would take every producer, and the API with them, out of rotation for nothing.
        if not relay.broker_ready():
            raise readiness.Degraded("no broker connection: events wait in the outbox")

    readiness.add_check(app, "broker", broker)
    await relay.run()


def settings_or_exit(service: str) -> Settings:
    """The settings, or one line on stderr saying which variable is wrong and a non-zero
    exit: an operator reads the reason, not a traceback."""
    try:
        return load_settings(a6pay_service=service)
    except ValidationError as exc:
        reasons = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            field = ".".join(str(part) for part in error["loc"]).upper()
            reasons.append(f"{field}: {message}" if field else message)
        print(f"{service}: refusing to start: {'; '.join(reasons)}", file=sys.stderr)
        raise SystemExit(2) from None


M_ARENA_MAX = -8  # glibc's mallopt parameter


def cap_malloc_arenas(arenas: int = 2) -> bool:
    """At most `arenas` malloc arenas, unless MALLOC_ARENA_MAX says otherwise. glibc gives
    each thread that allocates an arena of its own (up to 8 per core) and keeps what was
    freed there: the Razorpay SDK's and the QR renderer's threads keep megabytes resident
    in the services that run them. Threads that mostly wait need no arenas of their own.
    Call before any thread starts; False where it does not apply (not glibc)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


async def freeze_heap(_: web.Application) -> None:
    """What start-up built (modules, the app, settings) lives as long as the process: moved
    out of the collector's sight, so a full collection scans only what requests made since,
    and the pause every request in flight waits out stays short."""
    gc.collect()
    gc.freeze()


def serve(
    service: str,
    create_app: Callable[[Settings], web.Application],
    port_of,
    *,
    cancel_abandoned: bool = True,
) -> None:
    """`python -m <service>`: settings once, logging, then run until SIGINT/SIGTERM.

    `cancel_abandoned`: a request whose caller hung up (the gateway gave up on it) is
    cancelled, not finished for nobody; with the deadline header (shared/deadline.py) a
    brownout leaves no backlog. The Razorpay sandbox keeps working like Razorpay does."""
    cap_malloc_arenas()
    settings = settings_or_exit(service)
    settings = settings.model_copy(update={"db_application_name": service})
    setup_logging(service, settings.log_level, settings.secrets)
    path = None
    if settings.socket_dir and service in local_sockets.SERVICES:
        path = local_sockets.socket_path(settings.socket_dir, service, settings.worker)
    log.info("starting", extra={"ctx": {"port": port_of(settings), "socket": path}})
    for name in settings.public_defaults_in_use():
        log.warning("%s is the published default: set your own before taking payments", name)
    if settings.broker_default_account_exposed():
        log.warning("AMQP_URL reaches a broker on another host with the default guest"
                    " account: anyone who reaches it can publish events; set your own user")
    app = create_app(settings)
    app.on_startup.append(freeze_heap)
    if path is not None:
        local_sockets.claim(path)
    try:
        web.run_app(
            app,
            host=settings.bind_host,
            port=port_of(settings),
            path=path,  # besides the TCP port: the gateway's way in on this machine
            access_log=None,
            print=None,
            shutdown_timeout=10,
            # uvloop: the same asyncio API with a faster loop and socket layer (libuv)
            loop=uvloop.new_event_loop(),
            # `WORKERS` copies of this process listen on one port and the kernel spreads the
            # connections; off for one worker, so a forgotten old process still fails the bind.
            reuse_port=settings.workers > 1,
            handler_cancellation=cancel_abandoned,
        )
    finally:
        if path is not None:
            local_sockets.release(path)
