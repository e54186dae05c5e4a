"""The faults, each timed: the primary killed and its standby promoted (and, for the run
at scale, the old primary rebuilt to follow and a second failover back), and the RabbitMQ
node leading the notifier's queue stopped for good (the cluster carries on with two)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.chaos.record import Recorder
from bench.chaos_ha.world import HaWorld

WEBHOOK = "webhook (sandbox)"


@dataclass
class Outage:
    what: str
    injected: float  # time.monotonic() when the node went
    # when the tier could serve again: the standby promoted; for a broker node, at once
    # (the other nodes serve while it stops)
    repaired: float


async def database_failover(world: HaWorld, recorder: Recorder, pause: float) -> Outage:
    """Kill -9 of the primary (no shutdown), `pause` seconds with no primary at all (what
    an operator or CloudNativePG takes to notice), then the standby is promoted."""
    window = recorder.open_window("database failover")
    injected = time.monotonic()
    await asyncio.to_thread(world.postgres.kill_primary)
    await asyncio.sleep(pause)
    await asyncio.to_thread(world.postgres.promote_standby)
    recorder.close_window(window)
    return Outage(f"primary {world.postgres.standby.name} killed, "
                  f"{world.postgres.primary.name} promoted", injected, time.monotonic())


async def rebuild_old_primary(world: HaWorld) -> float:
    """The old primary back as the new primary's synchronous standby; returns seconds."""
    began = time.monotonic()
    await asyncio.to_thread(world.postgres.rebuild_old_primary)
    return time.monotonic() - began


async def broker_node_loss(world: HaWorld, recorder: Recorder) -> Outage:
    leader = await asyncio.to_thread(world.rabbit.leader_of, world.notifier_queue)
    window = recorder.open_window("broker node lost")
    injected = time.monotonic()
    await asyncio.to_thread(leader.stop)
    recorder.close_window(window)
    return Outage(f"RabbitMQ node {leader.nodename} (leader of the notifier's queue) stopped",
                  injected, injected)


def webhook_errors(recorder: Recorder, start: float, end: float) -> list[float]:
    """When the gateway answered a webhook 5xx (or not at all) between start and end."""
    return [a.at for a in recorder.answers
            if a.target == WEBHOOK and start <= a.at < end
            and (a.status is None or a.status >= 500)]


def webhooks_back_after(recorder: Recorder, outage: Outage, until: float) -> float:
    """Seconds from the repair to the first 2xx webhook answer after the last failed one
    (0 when none failed after the repair)."""
    failed = webhook_errors(recorder, outage.injected, until)
    since = max([outage.repaired, *failed])
    for answer in recorder.answers:
        if answer.target == WEBHOOK and answer.at >= since and answer.status is not None \
                and answer.status < 300:
            return max(0.0, answer.at - outage.repaired)
    return float("inf")
