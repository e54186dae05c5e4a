"""Many concurrent lookups, one round trip: `Coalescer`.

A payment-status read is one index lookup, yet its round trip to PostgreSQL (protocol,
snapshot, executor start, our driver's futures) costs several times the lookup itself. Under
load many reads are waiting at once, so they share a round trip: while a batch is in flight,
new calls queue, and the next batch takes them all. An idle service sends each call at once,
so coalescing adds no wait when there is nothing to share.

A call never joins a batch that has already been sent: whatever had committed before the
call was made is visible to the read that answers it.

Writes use the same machine for group commit (`group_commit`): writes in flight together
share one transaction, and a write with nobody to share with is a batch of one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from shared.http import DB_AWAY

K = TypeVar("K")
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """`await get(key)` answers from `fetch(keys)`, which gets a list of keys (duplicates
    included) and returns one result per key, in order. At most `in_flight` fetches run at
    once, each of at most `max_batch` keys. A fetch that fails fails every call in its batch
    with the same exception, unless `alone_unless` is given: then a batch of several that
    fails with anything else is fetched again one key at a time, and each call gets its own
    result or exception. A call that is cancelled leaves its batch to the others."""

    def __init__(
        self,
        fetch: Callable[[list[K]], Awaitable[Sequence[V]]],
        *,
        max_batch: int = 128,
        in_flight: int = 1,
        alone_unless: tuple[type[BaseException], ...] | None = None,
    ) -> None:
        if max_batch < 1 or in_flight < 1:
            raise ValueError("max_batch and in_flight must be at least 1")
        self._fetch = fetch
        self._alone_unless = alone_unless
        self._max_batch = max_batch
        self._in_flight_max = in_flight
        self._in_flight = 0
        self._waiting: list[tuple[K, asyncio.Future[V]]] = []
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    async def get(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        if self._closed:
            raise RuntimeError("coalescer closed")
        self._waiting.append((key, future))
        if self._in_flight < self._in_flight_max:
            self._send()
        return await future

    def _send(self) -> None:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        self._in_flight += 1
        # Its own task: a caller that is cancelled must not cancel the others' fetch.
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            await self._answer(batch)
        except BaseException:  # cancelled: shutting down
            for _, future in batch:
                future.cancel()
            raise
        finally:
            self._in_flight -= 1
            if self._closed:
                for _, future in self._waiting:
                    future.cancel()
                self._waiting.clear()
            elif self._waiting:
                self._send()

    async def _answer(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            results = await self._fetch([key for key, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"fetch returned {len(results)} results for {len(batch)} keys")
        except Exception as exc:
            if len(batch) > 1 and self._alone_unless is not None and not isinstance(
                    exc, self._alone_unless):
                for call in batch:  # one call's fault, most likely: each again alone
                    await self._answer([call])
                return
            for _, future in batch:  # handed to every caller of the batch, none lost
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Cancel the fetches in flight (their callers get CancelledError)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def group_commit(write: Callable[[list[K]], Awaitable[Sequence[V]]]) -> Coalescer[K, V]:
    """Writes in flight together commit together, in one transaction `write` runs; two at
    once per process, so one waits on the disk while the next fills. What to do when a
    batch cannot commit, for every batched write: the database being away is every write's
    answer; anything else is one write's fault (or, a deadlock or a serialization failure,
    the batch's bad luck), so each runs again alone."""
    return Coalescer(write, max_batch=64, in_flight=2, alone_unless=DB_AWAY)


async def in_rounds(items: Sequence[K], write: Callable[[list[K]], Awaitable[Sequence[V]]],
                    *keys: Callable[[K], Hashable], order: Callable[[K], Any]) -> list[V]:
    """`write`'s result for each item, in order, in rounds that never hold two writes to
    one row: an item goes in the first round none of whose items shares one of its keys (a
    twin finds what the first did). Each round is sorted by `order`, so that two batches
    lock rows in the same order."""
    results: dict[int, V] = {}
    while len(results) < len(items):
        taken: list[set] = [set() for _ in keys]
        chosen = []
        for n, item in enumerate(items):
            values = [key(item) for key in keys]
            if n not in results and not any(v in t for v, t in zip(values, taken, strict=True)):
                for value, t in zip(values, taken, strict=True):
                    t.add(value)
                chosen.append(n)
        chosen.sort(key=lambda n: order(items[n]))
        for n, result in zip(chosen, await write([items[n] for n in chosen]), strict=True):
            results[n] = result
    return [results[n] for n in range(len(items))]
