"""Every answer the chaos run saw, with when it came, and the outage windows to judge it by."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when the answer (or the failure) came
    target: str  # what was called: "create_order", "verify", "webhook (sandbox)", …
    status: int | None  # None: no HTTP answer at all (refused, reset, timed out)
    seconds: float = 0.0  # how long the answer took


@dataclass
class Window:
    """An outage, from the moment it was injected until `grace` after it was repaired."""

    what: str
    start: float
    end: float | None = None  # None while the outage lasts

    def covers(self, at: float, grace: float) -> bool:
        return self.start <= at and (self.end is None or at <= self.end + grace)


@dataclass
class Recorder:
    grace_seconds: float = 3.0
    answers: list[Answer] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)

    def note(self, target: str, status: int | None, seconds: float = 0.0) -> None:
        self.answers.append(Answer(time.monotonic(), target, status, seconds))

    def slowest(self, targets: set[str]) -> float:
        return max((a.seconds for a in self.answers if a.target in targets), default=0.0)

    def open_window(self, what: str) -> Window:
        window = Window(what, time.monotonic())
        self.windows.append(window)
        return window

    def close_window(self, window: Window) -> None:
        window.end = time.monotonic()

    def in_outage(self, at: float) -> bool:
        return any(w.covers(at, self.grace_seconds) for w in self.windows)

    def server_errors(self, *, in_outage: bool) -> list[Answer]:
        """5xx answers (and calls with no answer at all), inside or outside the windows."""
        bad = [a for a in self.answers if a.status is None or a.status >= 500]
        return [a for a in bad if self.in_outage(a.at) == in_outage]

    async def call(
        self, http: aiohttp.ClientSession, target: str, method: str, url: str, **kw
    ) -> tuple[int | None, object]:
        """One HTTP call, recorded; returns (status or None, parsed JSON or text)."""
        began = time.monotonic()
        try:
            async with http.request(method, url, allow_redirects=False, **kw) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.note(target, None, time.monotonic() - began)
            return None, type(exc).__name__
        self.note(target, status, time.monotonic() - began)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text


class Progress:
    """How many of the bookings have been started; the chaos waits on it."""

    def __init__(self, total: int):
        self.total = max(1, total)
        self.started = 0
        self.finished = False
        self._changed = asyncio.Condition()

    def share(self) -> float:
        return 1.0 if self.finished else self.started / self.total

    async def bump(self, *, finished: bool = False) -> None:
        async with self._changed:
            self.started += 0 if finished else 1
            self.finished = self.finished or finished
            self._changed.notify_all()

    async def reached(self, share: float) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.share() >= share)
