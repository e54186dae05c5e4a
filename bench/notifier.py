"""The notifier's figures alone, in a minute or two (`make bench` measures everything):

    python -m bench.notifier [--history N] [--workers N] [--profile DIR]

On the real stack (its own database and vhost) and with bench/load.py's phases: a webhook
burst (wrk, 8 s), a steady 100 deliveries/s (bench.paced), a checkout loop, on an empty
database or, with `--history N`, after N paid bookings of history (ops/history.py). It
prints the confirm rate against the ingest rate, received → confirmed latency, and CPU per
booking from /proc (utime + stime) for every service, counted until every mail of those
bookings is sent (mail work done after the confirmation is not left out); RSS at the end.
`--steady-right-after-burst` sends the steady rate while the burst's mails are still going
out, as `make bench` does (by default they are all sent first). `--profile DIR` runs
`py-spy record` on the notifier during the burst and on verification_service during the
checkout (collapsed stacks, `--gil`, in DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from bench import procstat, seed
from bench.load import INGEST_ORDERS, OUR_SERVICES, STEADY_RATE, STEADY_SECONDS, Bench
from ops import infra
from ops.history import add_paid_history
from ops.stack import replica_names, running_stack
from shared.db import create_database_if_missing, drop_database, migrate

CHECKOUT_BOOKINGS = 4_000
MAIL_DRAIN_LIMIT = 120


class NotifierBench(Bench):
    profile_dir: Path | None = None
    steady_right_after_burst = False  # else the burst's mails are all sent first

    def cpu(self) -> dict[str, float]:
        """Seconds of CPU per service, its replicas summed."""
        return {name: sum(procstat.cpu_seconds(self.stack.procs[key].pid)
                          for key in replica_names(name, self.stack.workers))
                for name in OUR_SERVICES}

    async def wait_mails_sent(self, booking_ids: list[int]) -> float:
        """Seconds until no mail of these bookings is pending (the sender drains them)."""
        started = time.monotonic()
        while time.monotonic() < started + MAIL_DRAIN_LIMIT:
            if not await self.pool.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM notifications WHERE booking_id = ANY($1)"
                    " AND state = 'pending')", booking_ids):
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        self.say("mails still pending")
        return float("nan")

    @contextmanager
    def profiling(self, service: str, name: str):
        if self.profile_dir is None:
            yield
            return
        # --gil: only the thread holding the GIL, i.e. where the CPU goes (a thread waiting
        # for the GIL would otherwise count as busy); raw: collapsed stacks, one per line
        out = self.profile_dir / f"{name}.txt"
        spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "--gil", "--format", "raw",
                                "-o", str(out), "--pid", str(self.stack.procs[service].pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield
        finally:
            spy.send_signal(2)  # SIGINT: py-spy writes the flame graph and exits
            spy.wait(timeout=30)
            self.say(f"profile of {service}: {out}")

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
            out["burst"] = await self.webhook_burst(burst, tag)
        # CPU seconds each of ours used from the burst's start until its last confirmation
        # (roughly: the burst plus the drain), to see who competed with the ingest
        out["burst"]["cpu_s_until_confirmed"] = {
            name: round(now - before[name], 2) for name, now in self.cpu().items()}
        mailed = [o["booking_id"] for o in burst]
        confirmed = out["burst"]["confirmed"]
        if self.steady_right_after_burst:  # as bench/load.py: the burst's mails still going
            out["steady"] = await self.webhook_steady(steady, tag)
            mailed += [o["booking_id"] for o in steady]
            confirmed += out["steady"]["n"]
        out["burst"]["mails_drained_s"] = await self.wait_mails_sent(mailed)
        after = self.cpu()
        out["burst"]["notifier_cpu_ms_per_booking"] = (
            (after["notifier"] - before["notifier"]) * 1000 / max(1, confirmed))
        out["burst"]["ratio"] = (out["burst"]["confirm_rate"] / out["burst"]["ingest_rate_db"]
                                 if out["burst"]["ingest_rate_db"] else 0.0)
        if not self.steady_right_after_burst:
            out["steady"] = await self.webhook_steady(steady, tag)
            await self.wait_mails_sent([o["booking_id"] for o in steady])
        before = self.cpu()
        with self.profiling("verification_service", f"verification-checkout-{tag}"):
            out["checkout"], cpu = await self.checkout(checkout)
        paid = await self.pool.fetch(
            "SELECT id FROM bookings WHERE id = ANY($1) AND status = 'confirmed'",
            [b["booking_id"] for b in checkout])
        out["checkout"]["mails_drained_s"] = await self.wait_mails_sent([r["id"] for r in paid])
        after = self.cpu()
        n = max(1, len(paid))
        out["checkout"]["cpu_ms_per_booking_with_mail"] = {
            name: round((after[name] - before[name]) * 1000 / n, 2) for name in OUR_SERVICES}
        out["checkout"]["cpu_ms_per_booking_bench_load"] = {
            k: round(v, 2) for k, v in cpu.items()}
        return out


async def run(history: int, workers: int, profile_dir: Path | None,
              steady_right_after_burst: bool) -> dict:
    db_url = infra.database_url(infra.unique_name("a6pay_nbench"))
    vhost = infra.unique_name("a6pay_nbench_vhost")
    await create_database_if_missing(db_url)
    await migrate(db_url)
    infra.create_vhost(vhost)
    limits = {f"RATE_LIMIT_{k}": "100000000" for k in
              ("CREATE_ORDER", "VERIFY_PAYMENT", "PAYMENT_STATUS")}
    env = {**limits, "LOG_LEVEL": "WARNING", "WORKERS": str(workers)}
    results = {}
    with tempfile.TemporaryDirectory(prefix="a6pay-nbench-") as tmp:
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
        try:
            with running_stack(db_url, infra.amqp_url(vhost), env) as stack:
                bench = NotifierBench(stack, pool, db_url, infra.amqp_url(vhost), "", Path(tmp))
                bench.profile_dir = profile_dir
                bench.steady_right_after_burst = steady_right_after_burst
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
            await drop_database(db_url)
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
            f" mails all sent {b['mails_drained_s']:.1f}s after the last confirmation",
            f"{label}: CPU s during the burst until confirmed {b['cpu_s_until_confirmed']}",
            f"{label}: steady {STEADY_RATE}/s received -> confirmed p50 {s['p50']:.0f} ms,"
            f" p99 {s['p99']:.0f} ms, {s['unconfirmed']} unconfirmed",
            f"{label}: checkout {c['rate']:.1f}/s; CPU ms per booking (mail incl.)"
            f" {c['cpu_ms_per_booking_with_mail']}",
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
    parser.add_argument("--steady-right-after-burst", action="store_true",
                        help="as make bench: the steady rate while the burst's mails go out")
    args = parser.parse_args()
    # `timeout` or a kill: unwind, so the stack's processes and the database go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run(args.history, args.workers, args.profile,
                              args.steady_right_after_burst))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(summary(results), file=sys.stdout)


if __name__ == "__main__":
    main()
