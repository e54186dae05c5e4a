"""What one webhook delivery costs: `python -m bench.ingest_profile` runs the real stack,
drives `wrk -c64` with signed `payment.captured` deliveries (each for a new order seeded with
SQL, as `make bench` does) and reports applied/s and CPU milliseconds per applied delivery
for the gateway, webhook_service and the PostgreSQL backends each of them holds, read from
/proc (utime + stime), on an empty database and again after a paid-booking history.

The notifier is stopped during the burst unless `--notifier`: its events wait in its queue,
so the figures are the ingest path's own (gateway → webhook_service → PostgreSQL → relay →
RabbitMQ). A PostgreSQL backend is counted for the process that holds its client socket.
Run it under the bench lock: `flock /work/bench.lock python -m bench.ingest_profile`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from pathlib import Path

import asyncpg

from bench import procstat, pyspy, seed, wrk
from bench.load import NO_RATE_LIMITS, Bench
from shared.settings import load_settings
from testkit.history import add_paid_history
from testkit.stack import own_stack

PATH_SERVICES = ("gateway", "webhook_service")


async def backends_by_owner(pool: asyncpg.Pool, pids: dict[str, int]) -> dict[str, list[int]]:
    """The PostgreSQL backends of this database, keyed by the service holding them (each
    names itself in `application_name`); the rest under "other"."""
    rows = await pool.fetch("SELECT pid, application_name FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    owned: dict[str, list[int]] = {name: [] for name in [*pids, "other"]}
    for row in rows:
        owned[row["application_name"] if row["application_name"] in pids else "other"].append(
            row["pid"])
    return owned


def backend_cpu(backends: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    return {owner: {p: procstat.cpu_seconds(p, with_children=False) for p in found}
            for owner, found in backends.items()}


async def cpu_snapshot(pool: asyncpg.Pool, pids: dict[str, int]) -> dict:
    return {"procs": {name: procstat.cpu_seconds(pid) for name, pid in pids.items()},
            "pg": backend_cpu(await backends_by_owner(pool, pids))}


def cpu_spent(before: dict, after: dict) -> dict[str, float]:
    """Seconds per process and per backend owner; a backend opened meanwhile (a pool that
    grew under load) counts from zero."""
    spent = {name: after["procs"][name] - before["procs"][name] for name in before["procs"]}
    for owner, found in after["pg"].items():
        earlier = before["pg"].get(owner, {})
        spent[f"pg:{owner}"] = sum(cpu - earlier.get(pid, 0.0) for pid, cpu in found.items())
    return spent


async def _commits(pool: asyncpg.Pool) -> int:
    """Transactions committed in this database so far (the webhook's own, the relay's
    batches, the gauges' polls...): per applied delivery, how well the relay batches."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")


async def burst(bench: Bench, workdir: Path, tag: str, args) -> dict:
    stack, pool = bench.stack, bench.pool
    async with pool.acquire() as conn:
        orders = await seed.open_orders(conn, args.orders, f"{tag}i", f"order_I{tag}_")
        await conn.execute("ANALYZE")
    bodies = workdir / f"ingest-{tag}.tsv"
    seed.write_deliveries(bodies, orders, f"{tag}i")
    pids = {name: stack.procs[name].pid for name in [*PATH_SERVICES, "notifier"]
            if name in stack.procs}
    await bench.wait_outbox_empty()
    commits_before = await _commits(pool)
    before = await cpu_snapshot(pool, pids)
    with contextlib.ExitStack() as profiles:
        for name in pids:
            profiles.enter_context(pyspy.recording(
                pids[name], args.py_spy / f"{tag}-{name}.txt" if args.py_spy else None))
        figures = await asyncio.to_thread(
            wrk.run, stack.gateway, "webhook.lua", seconds=args.seconds,
            connections=args.connections, env={"BENCH_BODIES": str(bodies)})
    await bench.wait_outbox_empty()  # the relay's share of each delivery is part of its cost
    applied = await pool.fetchval(
        "SELECT count(*) FROM webhook_events WHERE event_key = ANY($1) AND outcome = 'applied'",
        [f"id:evt_{tag}i{o['booking_id']}" for o in orders])
    if "notifier" in pids:
        await bench.wait_confirmed([o["booking_id"] for o in orders], applied)
    after = await cpu_snapshot(pool, pids)
    await asyncio.sleep(1.5)  # backends report their counts at most once a second
    commits = await _commits(pool) - commits_before
    per = {key: cpu * 1000 / max(applied, 1) for key, cpu in cpu_spent(before, after).items()}
    ours = [*PATH_SERVICES, *(f"pg:{name}" for name in PATH_SERVICES)]
    return {"applied": applied, "rate": applied / figures.seconds, "p99_ms": figures.p99_ms,
            "non_2xx": figures.status_errors + figures.socket_errors,
            "cpu_ms": per, "path_cpu_ms": sum(per[key] for key in ours),
            "commits": commits / max(applied, 1)}


def show(label: str, out: dict) -> None:
    cpu = "  ".join(f"{k} {v:.2f}" for k, v in out["cpu_ms"].items())
    print(f"{label}: {out['rate']:.0f} applied/s ({out['applied']}, {out['non_2xx']} failed,"
          f" p99 {out['p99_ms']:.0f} ms, {out['commits']:.2f} commits each);"
          f" CPU ms per applied: path {out['path_cpu_ms']:.2f}"
          f"  [{cpu}]", flush=True)


async def run(args) -> None:
    wrk.require_wrk()
    settings = load_settings()  # own_stack gives it a database and a vhost of its own
    with tempfile.TemporaryDirectory(prefix="a6pay-ingest-") as tmp:
        env = {**NO_RATE_LIMITS, "LOG_LEVEL": "WARNING"}
        async with own_stack(settings, env) as (stack, pool):
            bench = Bench(stack, pool, stack.env["DATABASE_URL"], stack.env["AMQP_URL"], "",
                          Path(tmp))
            if not args.notifier:
                stack.stop("notifier")
            for n in range(args.rounds):
                show(f"empty #{n + 1}", await burst(bench, Path(tmp), f"e{n}", args))
            if args.history:
                filled = await add_paid_history(stack.env["DATABASE_URL"], args.history)
                print(f"history of {args.history} written in {filled.seconds:.0f}s", flush=True)
                for n in range(args.rounds):
                    show(f"history #{n + 1}", await burst(bench, Path(tmp), f"h{n}", args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=1_000_000,
                        help="paid bookings added before the second pass (0: none)")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1, help="bursts per pass")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="also record py-spy stacks of the gateway, webhook_service"
                             " and the notifier (with --notifier)")
    parser.add_argument("--notifier", action="store_true",
                        help="keep the notifier consuming during the bursts")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
