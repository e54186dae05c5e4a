"""One warning when a dependency goes away and one when it is back, per component: an
outage the system rides out is two lines in the log, not one per retry and never a
traceback. The same transitions feed `a6pay_dependency_up` and `a6pay_reconnects`."""

from __future__ import annotations

import logging

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


class FailingStreak:
    """A background loop's failures as two lines: one when its passes start failing, one when
    a pass succeeds again. A loop retrying every few seconds through an outage would
    otherwise log every try."""

    def __init__(self, logger: logging.Logger, what: str):
        self.log, self.what, self.failing = logger, what, False

    def failed(self, error: BaseException) -> None:
        if not self.failing:
            self.failing = True
            self.log.warning("%s failed: %s", self.what, type(error).__name__)

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            self.log.warning("%s resumed", self.what)


_database_watches: dict[str, DatabaseWatch] = {}


def database_watch(component: str) -> DatabaseWatch:
    """The one watch of this process's pools for `component`: a service with two pools
    still says it once each way."""
    if component not in _database_watches:
        _database_watches[component] = DatabaseWatch(component)
    return _database_watches[component]


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
