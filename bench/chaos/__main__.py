"""`make chaos`: the ledger under faults.

Drives N bookings through the gateway (checkout at the sandbox, verify calls, webhooks
duplicated up to 5 times, reordered or dropped, forged webhooks and verify calls) while
RabbitMQ is stopped and started and the notifier is SIGKILLed and restarted. Then it waits
for the system to settle and prints one table: paid bookings vs captured payments at
Razorpay vs confirmed bookings vs passes/2 vs notifications, forged requests accepted,
outbox rows unsent, dead letters, and 5xx answered outside the outage windows.
Exit code 1 on any mismatch. Loopback only; its own database and broker, removed after.

    .venv/bin/python -m bench.chaos --bookings 500 [--seed 7] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import time

import aiohttp

from bench.chaos import after_capture
from bench.chaos.env import ChaosEnv
from bench.chaos.faults import Chaos
from bench.chaos.ledger import (
    DLQ,
    Row,
    check,
    db_counts,
    queue_depths,
    razorpay_captured,
    razorpay_refunds,
    refund_rows,
    render,
    settle,
    webhook_states,
)
from bench.chaos.plan import Plan, make_plans
from bench.chaos.record import Progress, Recorder
from bench.chaos.traffic import Traffic, run_booking

log = logging.getLogger("bench.chaos")

API_TARGETS = {"create_order", "verify", "payment_status", "forged_verify", "forged_webhook",
               "admin_refund", "admin_cancel"}
SETTLE_SECONDS = 150  # reserved at the end of --max-seconds for the system to catch up


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--bookings", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=25)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=None,
                   help="seconds over which booking starts are spread, so the outages land"
                   " amid the load (default: 0.25 s per booking, at least 30 s)")
    p.add_argument("--max-seconds", type=float, default=600,
                   help="bound on the whole run, set-up and settling included")
    p.add_argument("--grace", type=float, default=3.0,
                   help="seconds after an outage ends during which 5xx are still excused")
    p.add_argument("--keep", action="store_true",
                   help="keep the database and the service logs for inspection")
    return p.parse_args(argv)


async def drive(traffic: Traffic, plans: list[Plan], args, deadline: float,
                progress: Progress) -> None:
    """Starts booking i at i × duration / N (at most `concurrency` at once), until all are
    done or the deadline passes."""
    todo = iter(plans)
    duration = args.duration if args.duration is not None else max(30.0, 0.25 * len(plans))
    begin = time.monotonic()

    async def worker():
        for plan in todo:
            await asyncio.sleep(max(0.0, begin + plan.index * duration / len(plans)
                                    - time.monotonic()))
            if time.monotonic() > deadline:
                return
            await progress.bump()
            try:
                await run_booking(traffic, plan)
            except Exception as exc:  # noted, and the ledger will not balance
                traffic.anomalies.append(f"booking#{plan.index}: {type(exc).__name__}: {exc}")
            traffic.done += 1
            if traffic.done % max(1, len(plans) // 10) == 0:
                log.info("bookings done: %d/%d", traffic.done, len(plans))

    try:
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    finally:
        await progress.bump(finished=True)


def redeliveries(env: ChaosEnv) -> int:
    """Events the notifier saw again after a crash or a lost ack, and did not re-apply."""
    text = (env.stack.log_dir / "notifier.log").read_text(errors="replace")
    return text.count("duplicate event acknowledged")


async def ledger_rows(env: ChaosEnv, http, plans, traffic: Traffic, recorder) -> list[Row]:
    counts = await db_counts(env.pool)
    async with env.pool.acquire() as conn:
        order_ids = [r[0] for r in await conn.fetch("SELECT razorpay_order_id FROM payments")]
        paid_ids = {r[0] for r in await conn.fetch(
            "SELECT DISTINCT booking_id FROM payments WHERE status = 'captured'")}
        captured = {r[0]: r[1] for r in await conn.fetch(
            "SELECT razorpay_payment_id, amount_paise FROM payments WHERE status = 'captured'"
            " UNION ALL SELECT razorpay_payment_id, amount_paise FROM duplicate_payments")}
    at_razorpay = await razorpay_captured(http, env.stack.sandbox, order_ids)
    dead = (await queue_depths(env.broker.url))[DLQ] or 0
    states = await webhook_states(http, env.stack.sandbox)
    driven = [p for p in plans if p.ordered]
    planned_paid = sum(p.ends_paid for p in driven)
    as_planned = sum((p.booking_id in paid_ids) == p.ends_paid for p in driven)
    paid, confirmable = counts["paid"], counts["confirmable"]
    cancelled = sum(p.cancelled for p in driven)
    refunds = refund_rows(counts, await razorpay_refunds(http, env.stack.sandbox), captured,
                          sum(p.refunds_made for p in driven))
    forged = sum(traffic.forged.values())
    accepted = max(len(traffic.forged_accepted), counts["forged_rows"])
    outside = recorder.server_errors(in_outage=False)
    inside = recorder.server_errors(in_outage=True)
    return [
        check("bookings driven (order created)", len(driven), len(plans)),
        check("bookings paid (captured, our DB)", paid, planned_paid),
        check("captured payments at Razorpay", at_razorpay, paid),
        check("paid bookings cancelled (admin API)", counts["cancelled_paid"], cancelled),
        check("confirmed bookings (paid, not cancelled)", counts["confirmed"],
              paid - counts["cancelled_paid"]),
        Row("passes / 2 (paid before any cancellation)", f"{counts['passes'] / 2:g}",
            confirmable, counts["passes"] == 2 * confirmable),
        check("notifications payment_confirmed", counts["confirmations"], confirmable),
        check("payment.captured events emitted", counts["captured_events"], paid),
        check("events applied by the notifier (inbox)", counts["consumed"], counts["events"]),
        check("bookings ending as planned", as_planned, len(driven)),
        *refunds,
        *await after_capture.ledger_rows(env.pool, http, env.stack.sandbox, order_ids, driven),
        Row("forged deliveries accepted", f"{accepted} of {forged}", 0, accepted == 0),
        check("events in outbox unsent", counts["unsent"], 0),
        check("messages dead-lettered", dead, 0),
        Row("5xx answered outside outage windows", f"{len(outside)} of {len(recorder.answers)}",
            0, not outside),
        Row("5xx answered inside outage windows", len(inside), None),
        check("honest calls answered unexpectedly", len(traffic.anomalies), 0),
        check("webhook deliveries Razorpay gave up on", states["failed"], 0),
        Row("webhook deliveries (delivered/dropped)",
            f"{states['delivered']}/{states['dropped']}", None),
        Row("notifications payment_failed", counts["failure_notices"], None),
        Row("redeliveries absorbed by the notifier inbox", redeliveries(env), None),
        Row("slowest webhook answer (Razorpay: < 5 s)",
            f"{recorder.slowest({'webhook (sandbox)'}):.2f}s", None),
        Row("slowest API answer", f"{recorder.slowest(API_TARGETS):.2f}s", None),
    ]


async def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    deadline = t0 + args.max_seconds
    recorder = Recorder(grace_seconds=args.grace)
    plans = make_plans(args.bookings, args.seed)
    env = ChaosEnv(recorder, args.keep)
    try:
        await env.start()
        setup = time.monotonic() - t0
        log.info("stack up in %.1fs; driving %d bookings", setup, len(plans))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            traffic = Traffic(http, env.pool, env.stack.gateway, env.stack.sandbox, recorder,
                              random.Random(args.seed + 1))
            chaos = Chaos(env.broker, env.stack, recorder, random.Random(args.seed + 2))
            t1 = time.monotonic()
            progress = Progress(len(plans))
            chaos_task = asyncio.create_task(chaos.run(progress))
            await drive(traffic, plans, args, deadline - SETTLE_SECONDS, progress)
            traffic_seconds = time.monotonic() - t1
            await chaos_task  # the last outage may still be under way
            log.info("traffic done in %.1fs; settling", traffic_seconds)
            planned_paid = sum(p.ends_paid for p in plans if p.ordered)
            settled, waited = await settle(
                env.pool, http, env.stack.sandbox, env.broker.url, planned_paid,
                timeout=max(10.0, deadline - time.monotonic() - 30))
            rows = await ledger_rows(env, http, plans, traffic, recorder)
    finally:
        await env.close()
    total = time.monotonic() - t0
    print(f"A6 Pay chaos ledger: {args.bookings} bookings, seed {args.seed}, "
          f"concurrency {args.concurrency}")
    print(f"set-up {setup:.0f}s, traffic {traffic_seconds:.0f}s, settled "
          f"{'in' if settled else 'NOT within'} {waited:.0f}s, total {total:.0f}s\n")
    print(render(rows))
    print("\noutages:")
    for line in chaos.log_lines:
        print("  " + line)
    for note in traffic.anomalies[:20] + [f"forged {k} accepted ({s})"
                                          for k, s in traffic.forged_accepted]:
        print("  ! " + note)
    mismatches = [r.label for r in rows if not r.ok]
    if not settled:
        mismatches.append("did not settle within --max-seconds")
    print("\nLEDGER BALANCED" if not mismatches else "\nMISMATCH: " + "; ".join(mismatches))
    return 1 if mismatches else 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        stream=sys.stderr)
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
