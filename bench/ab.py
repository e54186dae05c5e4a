"""`make bench-ab REF=<commit>`: what a change saved, measured on a noisy machine.

Two whole stacks run side by side: the code as of REF (a temporary git worktree) and this
checkout, each on its own database and vhost, reached the way its own code reaches
PostgreSQL by default (TCP or the server's socket). They are loaded in turn, the order reversed
every round (old, new, new, old, ...), so a machine that gets busier or quieter meanwhile
falls on both alike; each round gives a new/old ratio, and the median of those is the
figure. On these shared machines the CPU a request costs moves by 2x from hour to hour,
so two `make bench` runs an hour apart cannot show a 10% change; this can.

Per round: checkout (create → pay → verify → confirmed with its mail sent, as in
`make bench`) for CPU per paid booking, then payment-status through the gateway with
`wrk -c64` for CPU per request. REF must share this checkout's dependencies (one venv
runs both) and the tables the seeding writes.

    python -m bench.ab REF [--rounds 10] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import asyncpg

from bench import load, seed, wrk
from bench.load import NO_RATE_LIMITS, Bench
from bench.report import table
from shared.db import create_database_if_missing, with_database
from testkit import infra
from testkit.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("old", "new")
BOOKINGS_PER_ROUND = 1_000  # more than a round of checkout gets through
STATUS_SECONDS = 4


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _database_url(code: Path, name: str) -> str:
    """Database `name` reached the way that checkout's own code reaches PostgreSQL by
    default: over TCP in older checkouts, on the server's Unix socket where it has one in newer."""
    base = subprocess.run(
        [sys.executable, "-c", "try:\n from testkit import infra\n"
         "except ImportError:  # a checkout from before the fixtures left ops/\n"
         " from ops import infra\nprint(infra.BASE_DATABASE_URL)"],
        cwd=code, capture_output=True, text=True, check=True).stdout.strip()
    return with_database(base, name)


def _migrate(code: Path, database_url: str) -> None:
    """With that checkout's own migrations."""
    subprocess.run([sys.executable, "-c", "import asyncio, sys; from shared.db import migrate;"
                    " asyncio.run(migrate(sys.argv[1]))", database_url], cwd=code, check=True)


async def run(ref: str, rounds: int, seconds: float) -> None:
    wrk.require_wrk()
    try:
        commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"{ref!r} names no commit of this repository") from None
    print(f"old: {ref} ({commit[:10]}); new: this checkout ({_git('rev-parse', 'HEAD')[:10]}"
          f"{', with uncommitted changes' if _git('status', '--porcelain') else ''})")
    made, pools, benches = [], [], {}
    with tempfile.TemporaryDirectory(prefix="a6pay-ab-") as tmp, ExitStack() as stacks:
        old_code = Path(tmp) / "old"
        _git("worktree", "add", "--detach", str(old_code), commit)
        stacks.callback(_git, "worktree", "remove", "--force", str(old_code))
        try:
            for side, code in zip(SIDES, (old_code, ROOT), strict=True):
                db_url = _database_url(code, infra.unique_name(f"a6pay_ab_{side}"))
                vhost = infra.unique_name(f"a6pay_ab_{side}_vhost")
                await create_database_if_missing(db_url)
                infra.create_vhost(vhost)
                made.append((db_url, vhost))
                _migrate(code, db_url)
                logs = Path(tmp) / f"logs-{side}"
                logs.mkdir()
                stack = Stack(db_url, infra.amqp_url(vhost), logs,
                              {**NO_RATE_LIMITS, "LOG_LEVEL": "WARNING"}, code=code)
                stacks.callback(stack.stop_all)
                stack.start_all()
                pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
                pools.append(pool)
                benches[side] = Bench(stack, pool, db_url, infra.amqp_url(vhost),
                                      "http://127.0.0.1:1", logs)
            results = await _rounds(benches, rounds, seconds)
        finally:
            for pool in pools:
                await pool.close()
            stacks.close()  # the stacks stop before their databases go
            for db_url, vhost in made:
                await infra.drop_database(db_url)
                infra.delete_vhost(vhost)
    _report(results)


async def _rounds(benches: dict[str, Bench], rounds: int,
                  seconds: float) -> dict[str, list[dict]]:
    todo = {}
    for side, bench in benches.items():
        async with bench.pool.acquire() as conn:
            todo[side] = iter(await seed.pending_bookings(
                conn, BOOKINGS_PER_ROUND * (rounds + 1), "ab"))
    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    for round_ in range(-1, rounds):  # round -1 warms both (pools, caches, first renders)
        for side in SIDES if round_ % 2 else SIDES[::-1]:
            bench = benches[side]
            bookings = [next(todo[side]) for _ in range(BOOKINGS_PER_ROUND)]
            checkout, cpu = await bench.checkout(bookings, seconds)
            low, high = await bench.pool.fetchrow(
                "SELECT min(booking_id), max(booking_id) FROM payments WHERE status = 'captured'")
            pids = {name: bench.pids_of(name) for name in ("gateway", "order_service")}
            status, status_cpu = await bench.status_load(
                bench.stack.gateway, {"BENCH_LO": str(low), "BENCH_HI": str(high)},
                STATUS_SECONDS, pids)
            if round_ >= 0:
                results[side].append({
                    "booking_ms": cpu["ours"], "pg_booking_ms": cpu["postgres"],
                    **{f"{name}_ms": cpu[name] for name in load.OUR_SERVICES},
                    "bookings_s": checkout["rate"], "status_us": status_cpu["ours"],
                    "pg_status_us": status_cpu["postgres"], "status_s": status.rate})
    return results


FIGURES = (("booking_ms", "CPU per paid booking, our processes, ms"),
           *((f"{name}_ms", f"  {name}'s, ms") for name in load.OUR_SERVICES),
           ("pg_booking_ms", "  PostgreSQL's, ms"),
           ("bookings_s", "checkout, bookings/s"),
           ("status_us", "CPU per payment-status request, gateway + order_service, µs"),
           ("pg_status_us", "  PostgreSQL's, µs"),
           ("status_s", "payment-status via gateway, req/s"))


def _report(results: dict[str, list[dict]]) -> None:
    rows = []
    for key, label in FIGURES:
        old, new = ([r[key] for r in results[side]] for side in SIDES)
        ratios = [n / o for o, n in zip(old, new, strict=True) if o]
        rows.append((label, f"{statistics.median(old):,.1f}", f"{statistics.median(new):,.1f}",
                     f"{statistics.median(ratios):.3f}",
                     " ".join(f"{r:.2f}" for r in ratios)))
    print(table(rows, head=("what (median of rounds)", "old", "new", "new/old",
                            "each round's new/old")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ref", help="the commit to compare this checkout with")
    # Many short rounds: the load on these machines drifts within seconds, and the finer
    # the turns, the more alike what each side meets.
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5, help="of checkout per round")
    args = parser.parse_args()
    asyncio.run(run(args.ref, args.rounds, args.seconds))


if __name__ == "__main__":
    main()
