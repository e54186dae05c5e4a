"""`make bench`: throughput and latency of the payment path on this machine.

Starts the real stack (its own database and vhost), then drives N bookings through
create-order → checkout (sandbox, with webhooks) → verify-payment, reads payment-status,
waits until the notifier has confirmed every booking, and prints figures. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import aiohttp
import asyncpg

from ops import api_client, infra
from ops.factories import make_booking
from ops.stack import running_stack
from shared.db import create_database_if_missing, drop_database, migrate


async def timed(samples: list[float], coro):
    started = time.perf_counter()
    result = await coro
    samples.append(time.perf_counter() - started)
    return result


async def bounded(concurrency: int, coros):
    gate = asyncio.Semaphore(concurrency)

    async def one(coro):
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


def summary(name: str, samples: list[float], wall: float) -> str:
    ms = sorted(s * 1000 for s in samples)
    pct = lambda p: ms[min(len(ms) - 1, int(p * len(ms)))]  # noqa: E731
    return (f"{name:<16} {len(ms):>6} {len(ms) / wall:>9.1f} {statistics.median(ms):>8.1f}"
            f" {pct(0.95):>8.1f} {pct(0.99):>8.1f} {ms[-1]:>8.1f}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(bookings: int, concurrency: int, webhooks: bool) -> None:
    db_url = infra.database_url(infra.unique_name("a6pay_bench"))
    vhost = infra.unique_name("a6pay_bench_vhost")
    await create_database_if_missing(db_url)
    await migrate(db_url)
    infra.create_vhost(vhost)
    limits = {f"RATE_LIMIT_{k}": "1000000" for k in
              ("CREATE_ORDER", "VERIFY_PAYMENT", "PAYMENT_STATUS")}
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=5)
    try:
        with running_stack(db_url, infra.amqp_url(vhost),
                           {**limits, "LOG_LEVEL": "WARNING"}) as stack:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency * 2)
            ) as http:
                await report(stack, pool, http, bookings, concurrency, webhooks)
    finally:
        await pool.close()
        await drop_database(db_url)
        infra.delete_vhost(vhost)


async def report(stack, pool, http, n: int, concurrency: int, webhooks: bool) -> None:
    rows = [await make_booking(pool) for _ in range(n)]
    lines = [f"{'step':<16} {'count':>6} {'per sec':>9} {'p50 ms':>8} {'p95 ms':>8}"
             f" {'p99 ms':>8} {'max ms':>8}"]

    create: list[float] = []
    t0 = time.perf_counter()
    orders = await bounded(concurrency, (timed(create, api_client.create_order(http, stack, b))
                                         for b in rows))
    lines.append(summary("create-order", create, time.perf_counter() - t0))
    assert all(o[0] == 200 for o in orders), "create-order failed"

    checkouts = await bounded(concurrency, (api_client.pay(http, stack, o[1]["order_id"],
                                                           enabled=webhooks)
                                            for o in orders))
    verify: list[float] = []
    t0 = time.perf_counter()
    verified = await bounded(concurrency, (timed(verify, api_client.verify(http, stack, b, c))
                                           for b, c in zip(rows, checkouts, strict=True)))
    lines.append(summary("verify-payment", verify, time.perf_counter() - t0))
    assert all(v[0] == 200 for v in verified), "verify failed"

    status: list[float] = []
    t0 = time.perf_counter()
    await bounded(concurrency, (timed(status, api_client.payment_status(http, stack,
                                                                        b["booking_id"]))
                                for b in rows * 5))
    lines.append(summary("payment-status", status, time.perf_counter() - t0))

    t0 = time.perf_counter()
    ids = [b["booking_id"] for b in rows]
    while True:
        confirmed = await pool.fetchval(
            "SELECT count(*) FROM bookings WHERE id = ANY($1) AND status = 'confirmed'", ids)
        if confirmed == n or time.perf_counter() - t0 > 120:
            break
        await asyncio.sleep(0.2)
    passes = await pool.fetchval("SELECT count(*) FROM passes WHERE booking_id = ANY($1)", ids)
    lines.append(f"confirmed {confirmed}/{n} bookings with {passes} passes,"
                 f" {time.perf_counter() - t0:.1f}s after the last verify")
    lines.append("RSS MB: " + ", ".join(f"{name} {rss_mb(proc.pid):.0f}"
                                       for name, proc in stack.procs.items()))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--no-webhooks", action="store_true",
                        help="the sandbox sends no webhooks: verify alone confirms")
    args = parser.parse_args()
    asyncio.run(run(args.bookings, args.concurrency, not args.no_webhooks))


if __name__ == "__main__":
    main()
