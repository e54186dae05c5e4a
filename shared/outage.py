"""One warning when a dependency goes away and one when it is back, per component: an
outage the system rides out is two lines in the log, not one per retry and never a
traceback. The same transitions feed `a6pay_dependency_up` and `a6pay_reconnects`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from shared import metrics
from shared.logging import log_ctx

log = logging.getLogger("shared.outage")

REASON_CHARS = 200


class OutageWatch:
    def __init__(self, dependency: str, component: str):
        self.dependency = dependency
        self.component = component
        self.down = False

    def lost(self, error: BaseException | None = None) -> None:
        metrics.DEPENDENCY_UP.labels(self.dependency).set(0)
        if not self.down:
            self.down = True
            log.warning(f"{self.dependency} unavailable", extra=log_ctx(
                component=self.component, error=type(error).__name__ if error else None,
                reason=str(error)[:REASON_CHARS] if error else None))

    def back(self) -> None:
        metrics.DEPENDENCY_UP.labels(self.dependency).set(1)
        if self.down:
            self.down = False
            metrics.RECONNECTS.labels(self.dependency).inc()
            log.warning(f"{self.dependency} back", extra=log_ctx(component=self.component))


async def every(seconds: float, what: str, logger: logging.Logger,
                one_pass: Callable[[], Awaitable[object]]) -> None:
    """Runs `one_pass` every `seconds`, forever. Its failures are two lines: one when its
    passes start failing (the database or Razorpay away), one when a pass succeeds again;
    a loop retrying through an outage would otherwise log every try."""
    failing = False
    while True:
        try:
            await one_pass()
            if failing:
                failing = False
                logger.warning("%s resumed", what)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not failing:
                failing = True
                logger.warning("%s failed: %s", what, type(exc).__name__)
        await asyncio.sleep(seconds)


_database_watches: dict[str, DatabaseWatch] = {}


def database_watch(component: str) -> DatabaseWatch:
    """The one watch of this process's pools for `component`: a service with two pools
    still says it once each way."""
    return _database_watches.setdefault(component, DatabaseWatch(component))


class DatabaseWatch(OutageWatch):
    """Opens a pool's connections (asyncpg's `connect=` hook): a connection that cannot be
    opened is the database (or, with a multi-host DATABASE_URL, every read-write primary)
    being away; the next one opened is its return. asyncpg's own retry lines about the
    pool's floor are kept at DEBUG (shared.logging), so this is what the log says."""

    def __init__(self, component: str):
        super().__init__("database", component)

    async def connect(self, *args, **kwargs) -> asyncpg.Connection:
        try:
            connection = await asyncpg.connect(*args, **kwargs)
        except Exception as exc:  # CancelledError is not an outage and is not caught
            self.lost(exc)
            raise
        self.back()
        return connection
