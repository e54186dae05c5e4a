"""One run: the stream of paid bookings, the faults at set points of it, the wait for the
system to settle, then the ledger and each outage's length. The failover test and
`make chaos-ha` both call `run`; the second at scale with the failover back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import aiohttp

from bench.chaos.record import Recorder
from bench.chaos_ha import faults
from bench.chaos_ha.ledger import ledger, settled
from bench.chaos_ha.stream import ConfirmationSampler, Stream
from bench.chaos_ha.world import HaWorld

log = logging.getLogger("bench.chaos_ha")


@dataclass
class Report:
    ledger: dict[str, int]
    outages: list[dict] = field(default_factory=list)
    rebuilds: list[float] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    unhandled: list[str] = field(default_factory=list)
    outage_warnings: list[str] = field(default_factory=list)
    settled: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


async def run(bookings: int, per_second: float, *, failover_back: bool, pause: float = 2.0,
              settle_seconds: float = 90, keep: bool = False) -> Report:
    recorder = Recorder(grace_seconds=0)
    world = HaWorld(recorder, keep)
    t0 = time.monotonic()
    try:
        await world.start()
        t1 = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            stream = Stream(http, world.pool, world.stack)
            sampler = ConfirmationSampler(world.pool)
            sampling = asyncio.create_task(sampler.run())
            streaming = asyncio.create_task(stream.run(bookings, per_second))
            outages, rebuilds = [], []

            # the faults at set points of the stream, each while bookings are in flight
            # (the rebuild takes seconds of its own: the stream goes on meanwhile)
            plan = [(0.15, "db"), (0.2, "rebuild"), (0.45, "broker"), (0.7, "db")] \
                if failover_back else [(0.25, "db"), (0.6, "broker")]
            for share, fault in plan:
                await stream.reached(share * bookings)
                if fault == "db":
                    outages.append(await faults.database_failover(world, recorder, pause))
                elif fault == "broker":
                    outages.append(await faults.broker_node_loss(world, recorder))
                else:
                    rebuilds.append(await faults.rebuild_old_primary(world))
            await streaming
            t2 = time.monotonic()
            log.info("stream done (%d paid); settling", stream.paid)
            deadline = time.monotonic() + settle_seconds
            done = False
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    done = await settled(world.pool, stream.booking_ids)
                if done:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)  # late doubles, if any, would land now
            report = Report(await ledger(world.pool, http, world.stack, stream.booking_ids,
                                         stream.paid), rebuilds=rebuilds, settled=done)
            sampling.cancel()
            ends = [o.injected for o in outages[1:]] + [time.monotonic()]
            for outage, end in zip(outages, ends, strict=True):
                entry: dict = {"what": outage.what}
                if outage.repaired > outage.injected:  # a promotion had to be waited for
                    entry["no primary (s)"] = round(outage.repaired - outage.injected, 2)
                entry.update({
                    "webhook 5xx": len(faults.webhook_errors(recorder, outage.injected, end)),
                    "webhooks 2xx again after repair (s)": round(
                        faults.webhooks_back_after(recorder, outage, end), 2),
                    "confirmations resumed after repair (s)": _rounded(
                        sampler.resumed_after(outage.repaired)),
                    "longest stretch without a confirmation (s)": round(
                        sampler.longest_stall(outage.injected, min(end, outage.injected + 30)),
                        2),
                })
                report.outages.append(entry)
        logs = world.logs().splitlines()
        report.tracebacks = [line for line in logs if "Traceback" in line]
        report.unhandled = [line for line in logs if '"unhandled error"' in line]
        report.outage_warnings = [line for line in logs if '"msg": "database unavailable"' in line
                                  or '"msg": "broker unavailable"' in line]
        report.seconds = {"set-up": t1 - t0, "stream": t2 - t1, "total": time.monotonic() - t0}
        return report
    finally:
        await world.close()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def render(report: Report) -> str:
    lines = ["ledger:"]
    lines += [f"  {name:<12} {value}" for name, value in report.ledger.items()]
    lines.append("outages:")
    for outage in report.outages:
        lines.append(f"  {outage['what']}")
        lines += [f"    {k}: {v}" for k, v in outage.items() if k != "what"]
    for seconds in report.rebuilds:
        lines.append(f"  old primary rebuilt as synchronous standby in {seconds:.1f}s")
    lines.append(f"tracebacks in service logs: {len(report.tracebacks)}; unhandled errors:"
                 f" {len(report.unhandled)}; 'unavailable' warnings: "
                 f"{len(report.outage_warnings)}")
    lines.append("times: " + ", ".join(f"{k} {v:.0f}s" for k, v in report.seconds.items()))
    lines.append("settled" if report.settled else "NOT SETTLED")
    return "\n".join(lines)
