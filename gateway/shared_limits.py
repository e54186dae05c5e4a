"""Per-client limits shared by every gateway process and machine, kept in Redis.

The `limits` library's moving window: one atomic Lua script per hit (check and count in one
step, never read-then-write), so two gateways cannot both let the 101st request through.

Payments must not stop because the limiter is away: when Redis cannot be reached the
gateway lets requests through (fails open), warns once per outage rather than per request,
and tries Redis again only every `retry_seconds`, so an outage adds no latency per request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from gateway.ratelimit import ALLOWED, Decision, Rate

log = logging.getLogger("gateway.limits")

# What a missing or broken Redis raises, through `limits` (wrapped) or around it.
_UNREACHABLE = (StorageError, OSError, ConnectionError, TimeoutError)


def limit_item(rate: Rate) -> RateLimitItem:
    """`limit` per `window` seconds; `limits` counts windows in whole seconds."""
    return RateLimitItemPerSecond(rate.limit, max(1, math.ceil(rate.window)))


class SharedRateLimiter:
    """The same groups and answers as the in-process `RateLimiter`, counted in Redis."""

    def __init__(
        self,
        redis_url: str,
        rates: Mapping[str, Rate],
        *,
        key_prefix: str,
        timeout_seconds: float = 1.0,
        retry_seconds: float = 5.0,
    ):
        # coredis logs each of its retries; during an outage our one warning says it all
        logging.getLogger("coredis").setLevel(logging.WARNING)
        self._items = {g: limit_item(r) for g, r in rates.items() if r.limit > 0 and r.window > 0}
        # Imported here: the Redis client is memory a gateway without REDIS_URL never needs.
        import coredis

        # Our own pool, handed to `limits`: closing it is then ours to do, in close().
        self._connections = coredis.ConnectionPool.from_url(
            redis_url, connect_timeout=timeout_seconds, stream_timeout=timeout_seconds)
        self._storage = RedisStorage(
            "async+" + redis_url,
            wrap_exceptions=True,
            key_prefix=key_prefix,
            connection_pool=self._connections,
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._timeout = timeout_seconds
        self._retry_seconds = retry_seconds
        self._down_since: float | None = None  # monotonic time of the outage's first failure
        self._next_try = 0.0

    @property
    def reachable(self) -> bool:
        return self._down_since is None

    def status(self) -> dict:
        """For /readyz: the limiter never makes the gateway unready, it says how it is."""
        if self.reachable:
            return {"ok": True, "detail": "shared limits in Redis"}
        down_for = round(time.monotonic() - self._down_since, 1)
        return {"ok": False, "detail": f"Redis unreachable for {down_for}s: "
                                       "failing open, requests are not rate limited"}

    async def check(self, group: str, client: str) -> Decision:
        """Count one request of `client` in `group`; say whether it may go through."""
        return await self._ask(group, client, count=True)

    async def peek(self, group: str, client: str) -> Decision:
        """Whether a request would go through now, counting nothing."""
        return await self._ask(group, client, count=False)

    async def _ask(self, group: str, client: str, *, count: bool) -> Decision:
        item = self._items.get(group)
        if item is None:
            return ALLOWED
        now = time.monotonic()
        if self._down_since is not None and now < self._next_try:
            return ALLOWED
        ask = self._limiter.hit if count else self._limiter.test
        try:
            async with asyncio.timeout(self._timeout * 2):
                if await ask(item, group, client):
                    decision = ALLOWED
                else:
                    stats = await self._limiter.get_window_stats(item, group, client)
                    decision = Decision(False, max(0.0, stats.reset_time - time.time()))
        except _UNREACHABLE as exc:
            self._next_try = now + self._retry_seconds
            if self._down_since is None:
                self._down_since = now
                log.warning(
                    "Redis unreachable (%s): failing open, requests are not rate limited "
                    "until it is back", type(exc).__name__)
            return ALLOWED
        if self._down_since is not None:
            log.info("Redis reachable again: shared rate limits apply")
            self._down_since = None
        return decision

    async def close(self) -> None:
        self._connections.disconnect()
