"""Per-client rate limits with GCRA (the generic cell rate algorithm).

GCRA is a token bucket stored as a single number per (group, client): the "theoretical
arrival time" (TAT) at which the client's bucket would be full again. A limit of N per
window W lets a client burst N requests, then one more every W/N seconds. One float per
key keeps memory small (a sliding-window log would store up to N timestamps per client),
and the answer to "when may I retry?" falls out exactly, for `Retry-After`.

Pure: no I/O, the clock is injected, so tests drive time by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

# Float sums of W/N drift by a few ulps; without slack the N-th request of a burst could be
# refused because N * (W / N) came out a hair above W.
_EPSILON = 1e-6


@dataclass(frozen=True)
class Rate:
    """`limit` requests per `window` seconds. A limit <= 0 means "not limited"."""

    limit: int
    window: float

    @property
    def interval(self) -> float:
        return self.window / self.limit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds for the `Retry-After` header: rounded up, never 0."""
        return max(1, math.ceil(self.retry_after - _EPSILON))


ALLOWED = Decision(allowed=True)


class Limiter(Protocol):
    """What the gateway asks: this in-process one, or the Redis-backed one shared by every
    gateway (gateway/shared_limits.py)."""

    async def check(self, group: str, client: str) -> Decision: ...

    async def peek(self, group: str, client: str) -> Decision:
        """Whether a hit would go through now, counting nothing."""
        ...

    def status(self) -> dict: ...

    async def close(self) -> None: ...


class RateLimiter:
    """GCRA keyed by (group, client); groups without a positive rate are never limited.

    Memory stays bounded two ways: keys whose bucket is full again (TAT in the past) carry
    no information and are swept periodically; beyond `max_keys`, the least recently
    used key is evicted (that client merely gets a fresh bucket).
    """

    def __init__(
        self,
        rates: Mapping[str, Rate],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ):
        self._rates = {g: r for g, r in rates.items() if r.limit > 0 and r.window > 0}
        self._clock = clock
        self._max_keys = max(1, max_keys)
        self._sweep_every = max([r.window for r in self._rates.values()] + [1.0])
        self._next_sweep = clock() + self._sweep_every
        # Insertion order doubles as recency: every hit re-inserts its key at the end.
        self._tat: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._tat)

    def hit(self, group: str, client: str) -> Decision:
        """Count one request of `client` in `group`; say whether it may go through."""
        rate = self._rates.get(group)
        if rate is None:
            return ALLOWED
        now = self._clock()
        self._maybe_sweep(now)
        key = (group, client)
        tat = max(self._tat.pop(key, now), now)
        new_tat = tat + rate.interval
        allow_at = new_tat - rate.window
        if allow_at - now > _EPSILON:
            self._tat[key] = tat  # refused requests do not use up budget
            return Decision(allowed=False, retry_after=allow_at - now)
        self._tat[key] = new_tat
        while len(self._tat) > self._max_keys:
            del self._tat[next(iter(self._tat))]
        return ALLOWED

    async def check(self, group: str, client: str) -> Decision:
        return self.hit(group, client)

    async def peek(self, group: str, client: str) -> Decision:
        rate = self._rates.get(group)
        if rate is None:
            return ALLOWED
        now = self._clock()
        allow_at = max(self._tat.get((group, client), now), now) + rate.interval - rate.window
        if allow_at - now > _EPSILON:
            return Decision(allowed=False, retry_after=allow_at - now)
        return ALLOWED

    def status(self) -> dict:
        return {"ok": True, "detail": "per-process limits (REDIS_URL unset)"}

    async def close(self) -> None:
        return None

    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_every
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
