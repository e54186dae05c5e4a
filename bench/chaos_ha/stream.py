"""A stream of paid bookings: each made, ordered through the gateway and paid at the
sandbox's checkout (whose webhook reaches the gateway through the tap), every step retried
until it goes through, as a shop and Razorpay would. And a sampler of how many bookings
are confirmed, to time when confirmations stop and resume."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import asyncpg

from shared.http import DB_ERRORS
from testkit.api_client import create_order, pay
from testkit.factories import make_booking

RETRY_SECONDS = 0.3


@dataclass
class Stream:
    http: aiohttp.ClientSession
    pool: asyncpg.Pool
    stack: object
    booking_ids: list[int] = field(default_factory=list)
    paid: int = 0  # checkouts completed at the sandbox ("sent")
    retried: int = 0  # steps that had to be tried again (a node was away)
    _grown: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def reached(self, count: float) -> None:
        """Returns once `count` bookings of the stream have been made."""
        async with self._grown:
            await self._grown.wait_for(lambda: len(self.booking_ids) >= count)

    async def run(self, bookings: int, per_second: float, concurrency: int = 8) -> None:
        begin = time.monotonic()
        starts = iter(range(bookings))

        async def worker():
            for index in starts:
                await asyncio.sleep(max(0.0, begin + index / per_second - time.monotonic()))
                await self.one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def one(self) -> None:
        booking = await self._until_done(lambda: make_booking(self.pool))
        async with self._grown:
            self.booking_ids.append(booking["booking_id"])
            self._grown.notify_all()
        order_id = await self._until_done(lambda: self._order(booking))
        await self._until_done(lambda: pay(self.http, self.stack, order_id))
        self.paid += 1

    async def _order(self, booking: dict) -> str | None:
        status, body, _ = await create_order(self.http, self.stack, booking)
        return body["order_id"] if status == 200 else None

    async def _until_done(self, step):
        while True:
            try:
                result = await step()
            except (*DB_ERRORS, aiohttp.ClientError, asyncpg.PostgresError):
                result = None
            if result is not None:
                return result
            self.retried += 1
            await asyncio.sleep(RETRY_SECONDS)


@dataclass
class ConfirmationSampler:
    """(time, confirmed bookings) every `interval` seconds; a failed read is skipped."""

    pool: asyncpg.Pool
    interval: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            try:
                count = await self.pool.fetchval(
                    "SELECT count(*) FROM bookings WHERE status = 'confirmed'")
                self.samples.append((time.monotonic(), count))
            except (*DB_ERRORS, asyncpg.PostgresError):
                pass
            await asyncio.sleep(self.interval)

    def longest_stall(self, start: float, end: float) -> float:
        """The longest time within [start, end] in which no booking was confirmed (a
        failed read counts as no confirmation), up to the last confirmation of the run:
        once every booking is confirmed, nothing is left to confirm."""
        rises = [t for (t, count), (_, before) in zip(self.samples[1:], self.samples,
                                                      strict=False) if count > before]
        if not rises:
            return 0.0
        end = min(end, rises[-1])
        marks = [start, *(t for t in rises if start <= t <= end), end]
        return max(0.0, *(b - a for a, b in zip(marks, marks[1:], strict=False)))

    def resumed_after(self, at: float) -> float | None:
        """Seconds from `at` to the first confirmation after it (None: none came)."""
        before = [count for t, count in self.samples if t <= at]
        base = before[-1] if before else 0
        for t, count in self.samples:
            if t > at and count > base:
                return t - at
        return None
