"""The outages: RabbitMQ stopped and started again, the notifier SIGKILLed and restarted.

They are scheduled by traffic progress, not by the clock, so they land in the middle of
the load however fast this machine is. Each one is recorded as a window; answers inside a
window (plus a grace margin) are excused, everything else must be a 2xx–4xx.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from bench.chaos.record import Progress, Recorder

log = logging.getLogger("bench.chaos")

# (share of bookings started, fault)
SCHEDULE = (
    (0.10, "broker"),
    (0.25, "notifier"),
    (0.45, "broker"),
    (0.60, "notifier twice"),  # killed again while it drains the backlog of the first
    (0.78, "broker+notifier"),  # the notifier dies and comes back while the broker is down
)


@dataclass
class Chaos:
    broker: object  # PrivateRabbitMQ: start(), stop()
    stack: object  # testkit.stack.Stack: start(name), stop(name, kill=True)
    recorder: Recorder
    rng: random.Random
    log_lines: list[str] = field(default_factory=list)
    _t0: float = field(default_factory=time.monotonic)

    def _say(self, text: str) -> None:
        line = f"t+{time.monotonic() - self._t0:6.1f}s  {text}"
        self.log_lines.append(line)
        log.info("chaos: %s", line)

    async def run(self, progress: Progress) -> None:
        for share, fault in SCHEDULE:
            await progress.reached(share)
            if fault == "broker":
                await self.broker_outage(self.rng.uniform(4, 8))
            elif fault == "notifier":
                await self.notifier_crash(self.rng.uniform(1, 4))
            elif fault == "notifier twice":
                await self.notifier_crash(self.rng.uniform(3, 5))
                await asyncio.sleep(self.rng.uniform(0.1, 0.6))
                await self.notifier_crash(self.rng.uniform(0.5, 1.5))
            else:
                await self.broker_outage(self.rng.uniform(6, 9), crash_notifier=True)

    async def broker_outage(self, seconds: float, crash_notifier: bool = False) -> None:
        window = self.recorder.open_window("rabbitmq down")
        await asyncio.to_thread(self.broker.stop)
        self._say(f"RabbitMQ stopped (stop_app) for {seconds:.1f}s")
        if crash_notifier:
            await asyncio.sleep(1)
            await self.notifier_crash(seconds / 3)
            await asyncio.sleep(seconds / 3)
        else:
            await asyncio.sleep(seconds)
        await asyncio.to_thread(self.broker.start)
        self.recorder.close_window(window)
        self._say("RabbitMQ started again")

    async def notifier_crash(self, seconds_down: float) -> None:
        window = self.recorder.open_window("notifier killed")
        await asyncio.to_thread(self.stack.stop, "notifier", True)
        self._say(f"notifier SIGKILLed, down for {seconds_down:.1f}s")
        await asyncio.sleep(seconds_down)
        await asyncio.to_thread(self.stack.start, "notifier")
        self.recorder.close_window(window)
        self._say("notifier restarted and healthy")
