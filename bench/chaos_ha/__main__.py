"""`make chaos-ha`: at scale, both faults and the failover back.

A primary with a synchronous standby and a three-node RabbitMQ cluster are built on this
machine; paid bookings stream through the gateway while the primary is killed and its
standby promoted, the old primary is rebuilt as the new one's synchronous standby, the
RabbitMQ node leading the notifier's queue is stopped, and the primary is killed again
(the failover back). Prints the ledger (sent, answered, confirmed, doubled, lost) and each
outage's length; exit code 1 unless nothing was lost or doubled and no log has a traceback.

    .venv/bin/python -m bench.chaos_ha --bookings 1000 [--per-second 8] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bench.chaos_ha.run import render, run
from shared.logging import PoolFloorNoise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos_ha",
                                description=__doc__.split("\n")[0])
    p.add_argument("--bookings", type=int, default=1000)
    p.add_argument("--per-second", type=float, default=8.0,
                   help="bookings started per second")
    p.add_argument("--pause", type=float, default=2.0,
                   help="seconds with no primary before the standby is promoted")
    p.add_argument("--settle-seconds", type=float, default=180.0)
    p.add_argument("--keep", action="store_true", help="keep the service logs")
    return p.parse_args(argv)


async def main_async(args: argparse.Namespace) -> int:
    report = await run(args.bookings, args.per_second, failover_back=True, pause=args.pause,
                       settle_seconds=args.settle_seconds, keep=args.keep)
    print(f"A6 Pay chaos-ha: {args.bookings} bookings at {args.per_second:g}/s")
    print(render(report))
    for line in report.tracebacks[:5] + report.unhandled[:5]:
        print("  ! " + line[:300])
    ledger = report.ledger
    ok = (report.settled and ledger["lost"] == 0 and ledger["doubled"] == 0
          and ledger["confirmed"] == ledger["sent"] == args.bookings
          and not report.tracebacks and not report.unhandled)
    print("LEDGER BALANCED" if ok else "MISMATCH")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:  # our own pool rides out the failovers too
        handler.addFilter(PoolFloorNoise())
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
