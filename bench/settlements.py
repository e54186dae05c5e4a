"""Settlement reconciliation at scale: a month of N captured payments settled in daily
settlements, served by the bundled sandbox, reconciled by a process of its own.

    python -m bench.settlements --items 100000 1000000 [--docs docs/settlements.md]

For each size, on a database of its own: N captured payments written with SQL, the sandbox
(its own process) told to settle them in one call (thirty daily settlements whose items it
computes on demand), then a child process runs the reconciler's own code (the poll, then
every due settlement's day, page by page) and reports items/s, CPU per item (utime + stime
from /proc) and its peak RSS (VmHWM); a second child serves GET /api/razorpay/ledger.csv
for the month from the order_service app, read over HTTP by this process: MB/s, and the
serving process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

from bench import procstat
from shared.db import create_database_if_missing, migrate
from testkit import infra

MONTH = date(2026, 1, 1)
DAYS = 30
AMOUNT = 150_000
PREFIX = "B"  # the sandbox's synthetic payments are pay_B000000001, …
ADMIN_TOKEN = "bench-admin-token-for-the-settlement-run"
TARGETS = {"items_per_second": 10_000, "cost_ratio": 0.9, "peak_rss_mb": 150,
           "ledger_mb_per_second": 20}
DOCS_START, DOCS_END = "<!-- bench.settlements: start -->", "<!-- bench.settlements: end -->"

_SEED = """
INSERT INTO bookings (id, customer_id, car_id, amount_paise, start_date, end_date, status,
                      confirmed_at, created_at)
SELECT {b0} + g, {customer}, {car}, {amount}, date '2026-02-01', date '2026-02-03',
       'confirmed', {captured}, {captured} - interval '5 minutes'
FROM generate_series(1, {n}) g;
INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt, amount_paise,
                      status, razorpay_payment_id, captured_at, created_at, updated_at)
SELECT {b0} + g, {customer}, 'order_{prefix}' || lpad(g::text, 9, '0'), 'a6-setl-' || g,
       {amount}, 'captured', 'pay_{prefix}' || lpad(g::text, 9, '0'), {captured},
       {captured} - interval '4 minutes', {captured}
FROM generate_series(1, {n}) g
"""


def _captured_at(per_day: int) -> str:
    """Payment g is captured on day (g - 1) / per_day of the month, spread over its hours."""
    return (f"(timestamptz '{MONTH.isoformat()} 00:00+00' + ((g - 1) / {per_day}) * interval"
            f" '1 day' + (g % 36000) * interval '1 second')")


async def seed(database_url: str, per_day: int) -> float:
    """N = per_day × DAYS captured payments (with their bookings), written with SQL."""
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        customer = await conn.fetchval(
            "INSERT INTO customers (name, email) VALUES ('Bench', 'bench@example.com')"
            " RETURNING id")
        car = await conn.fetchval(
            "INSERT INTO cars (name, registration) VALUES ('Bench Car', 'KA00B0000') RETURNING id")
        n = per_day * DAYS
        b0 = await conn.fetchval("SELECT nextval('bookings_id_seq')")
        await conn.execute("SELECT setval('bookings_id_seq', $1)", b0 + n)
        async with conn.transaction():
            # consistent by construction: no per-row foreign-key checks
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("SET LOCAL synchronous_commit = off")
            for statement in _SEED.format(b0=b0, customer=customer, car=car, amount=AMOUNT,
                                          n=n, prefix=PREFIX,
                                          captured=_captured_at(per_day)).split(";\n"):
                await conn.execute(statement)
        await conn.execute("VACUUM (FREEZE, ANALYZE) bookings, payments")
    finally:
        await conn.close()
    return time.perf_counter() - started


def _env(database_url: str, sandbox_url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "RAZORPAY_BASE_URL": sandbox_url,
           "ADMIN_API_TOKEN": ADMIN_TOKEN, "LOG_LEVEL": "WARNING",
           "SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9/unused"}
    env.pop("RAZORPAY_KEY_ID", None)
    return env


def start_sandbox(env: dict) -> tuple[subprocess.Popen, str]:
    port = infra.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "razorpay_sandbox"],
                            env={**env, "SANDBOX_PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if procstat.listening_pid(port) is not None:
            return proc, url
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the sandbox did not start")


async def settle_month(sandbox_url: str, per_day: int) -> list[dict]:
    first = int(datetime(MONTH.year, MONTH.month, MONTH.day, 12, tzinfo=UTC).timestamp())
    async with aiohttp.ClientSession() as http, http.post(
            f"{sandbox_url}/sandbox/settlements/month",
            json={"prefix": PREFIX, "per_day": per_day, "days": DAYS, "amount": AMOUNT,
                  "first_day_at": first}) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["settlements"]


def run_child(mode: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.settlements", "--child", mode],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def child_reconcile() -> dict:
    """The reconciling process: the poll, then every due settlement's day."""
    from order_service.settlements import poll_settlements, reconcile_due
    from shared.db import create_pool
    from shared.razorpay_client import RazorpayClient
    from shared.settings import load_settings

    settings = load_settings()
    pool = await create_pool(settings)
    razorpay = RazorpayClient(settings)
    try:
        cpu, started = procstat.cpu_seconds(os.getpid(), False), time.perf_counter()
        since = datetime(MONTH.year, MONTH.month, MONTH.day, tzinfo=UTC)
        settlements = await poll_settlements(pool, razorpay, datetime.now(UTC), since=since)
        days = await reconcile_due(pool, razorpay)
        seconds = time.perf_counter() - started
        cpu = procstat.cpu_seconds(os.getpid(), False) - cpu
        verdicts = [v.status for d in days for v in d.verdicts]
        # The database's share: its backends for this run's connections (opened by us).
        backends = await pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        database_cpu = sum(procstat.cpu_seconds(r["pid"], False) for r in backends)
    finally:
        razorpay.close()
        await pool.close()
    items = sum(d.items for d in days)
    return {"settlements": settlements, "items": items, "seconds": seconds, "cpu_seconds": cpu,
            "matched": verdicts.count("matched"), "flagged": verdicts.count("flagged"),
            "database_cpu_seconds": database_cpu, "peak_rss_mb": _peak_rss_mb()}


async def child_ledger() -> dict:
    """The order_service app serving ledger.csv (as `python -m order_service` would, without
    its background work): says its port, serves until told on stdin, then says its peak RSS."""
    from aiohttp import web

    from order_service.app import create_app
    from shared.settings import load_settings

    port = infra.free_port()
    runner = web.AppRunner(create_app(load_settings(), relay=False, reconciler=False))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"port": port}), flush=True)
    try:
        await asyncio.to_thread(sys.stdin.readline)
    finally:
        await runner.cleanup()
    return {"peak_rss_mb": _peak_rss_mb()}


async def read_ledger(env: dict) -> dict:
    """The month's ledger.csv over HTTP from a serving child: MB/s, and the child's RSS."""
    server = subprocess.Popen([sys.executable, "-m", "bench.settlements", "--child", "ledger"],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(await asyncio.to_thread(server.stdout.readline))["port"]
        last = MONTH + timedelta(days=DAYS - 1)
        size = rows = 0
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(
                f"http://127.0.0.1:{port}/api/razorpay/ledger.csv",
                params={"from": MONTH.isoformat(), "to": last.isoformat()},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
            assert resp.status == 200, await resp.text()
            async for chunk in resp.content.iter_chunked(1 << 16):
                size += len(chunk)
                rows += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        server.stdin.write("done\n")
        server.stdin.flush()
        served = json.loads(await asyncio.to_thread(server.stdout.readline))
        await asyncio.to_thread(server.wait, 30)
    finally:
        if server.poll() is None:  # it failed on the way: do not leave it serving
            server.kill()
            server.wait()
    return {"bytes": size, "rows": rows - 1, "seconds": seconds, **served}


async def one_size(items: int) -> dict:
    per_day = max(1, items // DAYS)
    database_url = infra.database_url(infra.unique_name("a6pay_bench_setl"))
    await create_database_if_missing(database_url)
    await migrate(database_url)
    try:
        seed_seconds = await seed(database_url, per_day)
        sandbox, sandbox_url = start_sandbox(_env(database_url, "http://unused"))
        try:
            env = _env(database_url, sandbox_url)
            made = await settle_month(sandbox_url, per_day)
            sandbox_cpu = procstat.cpu_seconds(sandbox.pid, False)
            reconciled = await asyncio.to_thread(run_child, "reconcile", env)
            reconciled["sandbox_cpu_seconds"] = procstat.cpu_seconds(sandbox.pid,
                                                                     False) - sandbox_cpu
            ledger = await read_ledger(env)
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=10)
    finally:
        await infra.drop_database(database_url)
    return {"items": per_day * DAYS, "settlements_made": len(made), "seed_seconds": seed_seconds,
            "reconcile": reconciled, "ledger": ledger}


def summary(results: list[dict]) -> list[dict]:
    base = results[0]["reconcile"]
    base_cost = base["cpu_seconds"] / base["items"]
    lines = []
    for result in results:
        r, led = result["reconcile"], result["ledger"]
        cost = r["cpu_seconds"] / r["items"]
        lines.append({
            "items": r["items"], "settlements": r["settlements"], "matched": r["matched"],
            "flagged": r["flagged"], "items_per_second": r["items"] / r["seconds"],
            "cpu_us_per_item": cost * 1e6, "cost_ratio": base_cost / cost,
            "sandbox_cpu_us_per_item": r["sandbox_cpu_seconds"] / r["items"] * 1e6,
            "database_cpu_us_per_item": r["database_cpu_seconds"] / r["items"] * 1e6,
            "peak_rss_mb": r["peak_rss_mb"], "ledger_rows": led["rows"],
            "ledger_mb_per_second": led["bytes"] / 1e6 / led["seconds"],
            "ledger_peak_rss_mb": led["peak_rss_mb"]})
    return lines


def table(lines: list[dict]) -> str:
    def ok(value: float, target: float, higher: bool = True) -> str:
        return "✓" if (value >= target if higher else value <= target) else "✗"

    out = ["| items | settlements matched / flagged | items/s | CPU µs/item | cost ratio"
           " (first size / this) | peak RSS MB | ledger rows | ledger MB/s | ledger RSS MB |",
           "|---|---|---|---|---|---|---|---|---|"]
    for x in lines:
        out.append(
            f"| {x['items']:,} | {x['matched']} / {x['flagged']} |"
            f" {x['items_per_second']:,.0f}"
            f" {ok(x['items_per_second'], TARGETS['items_per_second'])}"
            f" | {x['cpu_us_per_item']:.1f} |"
            f" {x['cost_ratio']:.2f} {ok(x['cost_ratio'], TARGETS['cost_ratio'])} |"
            f" {x['peak_rss_mb']:.0f} {ok(x['peak_rss_mb'], TARGETS['peak_rss_mb'], False)} |"
            f" {x['ledger_rows']:,} |"
            f" {x['ledger_mb_per_second']:.1f}"
            f" {ok(x['ledger_mb_per_second'], TARGETS['ledger_mb_per_second'])} |"
            f" {x['ledger_peak_rss_mb']:.0f} |")
    out.append("")
    out.append("CPU per item elsewhere, the same runs (sandbox · database backends): " + ", ".join(
        f"{x['items']:,}: {x['sandbox_cpu_us_per_item']:.1f} · {x['database_cpu_us_per_item']:.1f}"
        " µs" for x in lines) + f". Load average at the end: {os.getloadavg()[0]:.1f}.")
    out.append("")
    out.append(f"Targets: ≥ {TARGETS['items_per_second']:,} items/s, cost ratio ≥"
               f" {TARGETS['cost_ratio']}, peak RSS ≤ {TARGETS['peak_rss_mb']} MB, ledger ≥"
               f" {TARGETS['ledger_mb_per_second']} MB/s. Machine: {os.cpu_count()} cores,"
               " shared.")
    return "\n".join(out)


def write_docs(path: Path, text: str) -> None:
    """Replaces the generated section of `path` (between its markers) with `text`."""
    doc = path.read_text() if path.exists() else ""
    if DOCS_START not in doc or DOCS_END not in doc:  # another folder (make bench OUTPUT=…)
        doc += f"{DOCS_START}\n{DOCS_END}\n"
    head, rest = doc.split(DOCS_START, 1)
    _, tail = rest.split(DOCS_END, 1)
    path.write_text(f"{head}{DOCS_START}\n{text}\n{DOCS_END}{tail}")


async def run(sizes: list[int], docs: Path | None) -> list[dict]:
    results = []
    for items in sizes:
        print(f"settlements: {items:,} items …", flush=True)
        results.append(await one_size(items))
    lines = summary(results)
    text = table(lines)
    print(text)
    print(json.dumps(lines))
    if docs is not None:
        write_docs(docs, f"`python -m bench.settlements --items {' '.join(map(str, sizes))}`"
                         f" wrote this:\n\n{text}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="the month's payments, one run per size; cost ratio vs the first")
    parser.add_argument("--docs", type=Path, default=None,
                        help="write the table into this file's generated section")
    parser.add_argument("--child", choices=["reconcile", "ledger"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        work = child_reconcile if args.child == "reconcile" else child_ledger
        print(json.dumps(asyncio.run(work())))
        return
    asyncio.run(run(args.items, args.docs))


if __name__ == "__main__":
    main()
