"""The notifier's figures alone, in a minute or two (`make bench` measures everything):

    python -m bench.notifier [--history N] [--workers N] [--profile DIR]

On the real stack (its own database and vhost) and with bench/load.py's phases: a webhook
burst (wrk, 8 s), a steady 100 deliveries/s (bench.paced), a checkout loop, on an empty
database or, with `--history N`, after N paid bookings of history (testkit/history.py). Each
phase waits until its confirmation mails are sent, as `make bench` does. It prints the
confirm rate against the ingest rate, received → confirmed latency, CPU per booking from
/proc (utime + stime) for every service, replicas summed, counted until every mail of
those bookings is sent, and RSS at the end, by kind of mapping. `--profile DIR` runs
`py-spy record` on the notifier during the burst and on verification_service during the
checkout (collapsed stacks, `--gil`, in DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path

import asyncpg

from bench import procstat, pyspy, seed
from bench.load import (
    INGEST_ORDERS,
    NO_RATE_LIMITS,
    OUR_SERVICES,
    STEADY_RATE,
    STEADY_SECONDS,
    Bench,
)
from shared.db import create_database_if_missing, migrate
from testkit import infra
from testkit.history import add_paid_history
from testkit.stack import replica_names, running_stack

CHECKOUT_BOOKINGS = 4_000


class NotifierBench(Bench):
    profile_dir: Path | None = None

    def cpu(self) -> dict[str, float]:
        """Seconds of CPU per service, its replicas summed."""
        return {name: sum(map(procstat.cpu_seconds, self.pids_of(name))) for name in OUR_SERVICES}

    def profiling(self, service: str, name: str):
        output = self.profile_dir / f"{name}.txt" if self.profile_dir else None
        return pyspy.recording(self.stack.procs[service].pid, output, gil=True)

    async def run_notifier_set(self, tag: str) -> dict:
        async with self.pool.acquire() as conn:
            burst = await seed.open_orders(conn, INGEST_ORDERS, f"{tag}i", f"order_I{tag}_")
            steady = await seed.open_orders(conn, STEADY_RATE * STEADY_SECONDS, f"{tag}s",
                                            f"order_S{tag}_")
            checkout = await seed.pending_bookings(conn, CHECKOUT_BOOKINGS, f"{tag}c")
            await conn.execute("ANALYZE")
        out = {}
        before = self.cpu()
        with self.profiling("notifier", f"notifier-burst-{tag}"):
            out["burst"] = await self.webhook_burst(burst, f"{tag}i")  # until its mails are sent
        after = self.cpu()
        out["burst"]["cpu_s"] = {name: round(after[name] - before[name], 2) for name in after}
        out["burst"]["notifier_cpu_ms_per_booking"] = (
            (after["notifier"] - before["notifier"]) * 1000 / max(1, out["burst"]["confirmed"]))
        out["burst"]["ratio"] = (out["burst"]["confirm_rate"] / out["burst"]["ingest_rate_db"]
                                 if out["burst"]["ingest_rate_db"] else 0.0)
        out["steady"] = await self.webhook_steady(steady, tag)
        with self.profiling("verification_service", f"verification-checkout-{tag}"):
            out["checkout"], cpu = await self.checkout(checkout)  # until its mails are sent
        out["checkout"]["cpu_ms_per_booking"] = {k: round(v, 2) for k, v in cpu.items()}
        return out


async def run(history: int, workers: int, profile_dir: Path | None) -> dict:
    db_url = infra.database_url(infra.unique_name("a6pay_nbench"))
    vhost = infra.unique_name("a6pay_nbench_vhost")
    await create_database_if_missing(db_url)
    await migrate(db_url)
    infra.create_vhost(vhost)
    env = {**NO_RATE_LIMITS, "LOG_LEVEL": "WARNING", "WORKERS": str(workers)}
    results = {}
    with tempfile.TemporaryDirectory(prefix="a6pay-nbench-") as tmp:
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
        try:
            with running_stack(db_url, infra.amqp_url(vhost), env) as stack:
                bench = NotifierBench(stack, pool, db_url, infra.amqp_url(vhost), "", Path(tmp))
                bench.profile_dir = profile_dir
                if history:  # one set per run: a run stays within the bench lock's 5 min
                    filled = await add_paid_history(db_url, history)
                    bench.say(f"history of {history} written in {filled.seconds:.1f}s")
                    results["history"] = await bench.run_notifier_set("h")
                else:
                    results["empty"] = await bench.run_notifier_set("e")
                results["rss_mb"] = {
                    key: round(procstat.rss_mb(stack.procs[key].pid), 1)
                    for name in OUR_SERVICES for key in replica_names(name, workers)}
                results["rss_where_mb"] = {
                    key: rss_where(stack.procs[key].pid)
                    for name in OUR_SERVICES for key in replica_names(name, workers)}
        finally:
            await pool.close()
            await infra.drop_database(db_url)
            infra.delete_vhost(vhost)
    return results


def rss_where(pid: int) -> dict[str, float]:
    """Resident MB by kind of mapping: the main heap, malloc's per-thread arenas (64 MB
    reservations), other anonymous memory (Python's object arenas, stacks), files."""
    where: dict[str, float] = {}
    kind = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not line.startswith(("Rss", "Size")) and ":" not in fields[0]:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            path = fields[5] if len(fields) > 5 else ""
            kind = ("heap" if path == "[heap]" else "file" if path.startswith("/") else
                    "thread arenas" if end - start >= 60 << 20 or (start & ((64 << 20) - 1)) == 0
                    and not path else "anon")
        elif fields[0] == "Rss:" and kind is not None:
            where[kind] = where.get(kind, 0.0) + int(fields[1]) / 1024
    return {k: round(v, 1) for k, v in where.items()}


def summary(results: dict) -> str:
    lines = []
    for label in ("empty", "history"):
        if (r := results.get(label)) is None:
            continue
        b, s, c = r["burst"], r["steady"], r["checkout"]
        lines += [
            f"{label}: burst ingest {b['ingest_rate_db']:.0f}/s,"
            f" confirmed {b['confirm_rate']:.0f}/s"
            f" (ratio {b['ratio']:.2f}), drained {b['drain_s']:.1f}s after;"
            f" notifier {b['notifier_cpu_ms_per_booking']:.2f} ms CPU per booking (mail incl.);"
            f" mails all sent {b['mails_drain_s']:.1f}s after the last confirmation",
            f"{label}: CPU s during the burst until its mails were sent {b['cpu_s']}",
            f"{label}: steady {STEADY_RATE}/s received -> confirmed p50 {s['p50']:.0f} ms,"
            f" p99 {s['p99']:.0f} ms, {s['unconfirmed']} unconfirmed",
            f"{label}: checkout {c['rate']:.1f}/s; CPU ms per booking (mail incl.)"
            f" {c['cpu_ms_per_booking']}",
        ]
    lines.append(f"RSS MB: {results.get('rss_mb')}")
    lines.append(f"RSS by mapping, MB: {results.get('rss_where_mb')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    # `timeout` or a kill: unwind, so the stack's processes and the database go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run(args.history, args.workers, args.profile))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(summary(results), file=sys.stdout)


if __name__ == "__main__":
    main()
