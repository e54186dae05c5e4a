"""`make bench`: what the payment path costs on this machine, on an empty database and again
after a million-booking history, every figure next to the limit it should be judged by,
measured in the same run.

Starts the real stack as `make run` does (its own database and vhost) and a one-process
aiohttp app answering a constant JSON (the framework's ceiling). Seeds with SQL. Each phase
has a fixed time budget; `wrk` (and `pgbench`) generate the load out of process. Prints one
table of ratios and writes docs/benchmarks.md with a plot. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import asyncpg

from bench import counting_cost, pgbench, procstat, seed, wrk
from bench import settlements as settlement_bench
from bench.report import print_and_write
from shared.db import create_database_if_missing, migrate
from testkit import api_client, infra
from testkit.history import add_paid_history
from testkit.stack import Stack, replica_names, running_stack

# Time budgets (seconds) and sizes: the whole run stays under six minutes.
STATUS_SECONDS = 8
STATUS_WARM_SECONDS = 3  # unmeasured reads before the status runs (see run_set)
CEILING_SECONDS = 6
INGEST_SECONDS = 4
# The burst with the notifier stopped sends twice as much a second, and its mails are then
# sent before the next phase: half as long keeps the run inside its budget.
INGEST_ALONE_SECONDS = 2
STEADY_RATE, STEADY_SECONDS = 100, 10
PGBENCH_SECONDS = 4
CHECKOUT_SECONDS = 10
# metrics on/off: pairs of each, rounds, seconds a load (see metrics_cost)
METRICS_PAIRS, METRICS_ROUNDS, METRICS_SECONDS = 3, 3, 3
DRAIN_LIMIT = 30  # longest wait for the notifier to catch up after a phase
MAIL_DRAIN_LIMIT = 90  # longest wait for a phase's confirmation mails to be sent
CONNECTIONS = 64
CHECKOUT_CONCURRENCY = 16
INGEST_ORDERS = 15_000  # more than wrk can send in INGEST_SECONDS: every body is a new order
PGBENCH_ORDERS = 40_000
CHECKOUT_BOOKINGS = 4_000
# The load is the point: the gateway's per-client limits would answer most of it with 429.
NO_RATE_LIMITS = {f"RATE_LIMIT_{k}": "100000000" for k in
                  ("CREATE_ORDER", "VERIFY_PAYMENT", "PAYMENT_STATUS")}
SINK = "bench.pgbench"  # routing key of pgbench's outbox rows: a queue that drops them

OUR_SERVICES = ("gateway", "order_service", "verification_service", "webhook_service",
                "notifier")  # the sandbox stands for Razorpay: not ours


@dataclass
class SetResult:
    """One pass over every phase, on the database as it is."""

    label: str
    bookings_in_db: int = 0
    status_gateway: wrk.WrkResult | None = None
    status_direct: wrk.WrkResult | None = None
    ceiling: wrk.WrkResult | None = None
    ingest: dict = field(default_factory=dict)  # the whole pipeline at once
    ingest_alone: dict = field(default_factory=dict)  # the notifier stopped, then draining
    steady: dict = field(default_factory=dict)
    pgbench: dict = field(default_factory=dict)
    checkout: dict = field(default_factory=dict)
    cpu_ms: dict = field(default_factory=dict)
    # run name -> process -> CPU microseconds per request, for the status and ceiling runs
    request_cpu_us: dict = field(default_factory=dict)


class Bench:
    def __init__(self, stack, pool: asyncpg.Pool, database_url: str, amqp_url: str,
                 ceiling_url: str, workdir: Path, ceiling_pid: int | None = None):
        self.stack, self.pool, self.database_url = stack, pool, database_url
        self.amqp_url, self.ceiling_url, self.workdir = amqp_url, ceiling_url, workdir
        self.ceiling_pid = ceiling_pid
        self.stack_env: dict = {}  # the stack's extra environment, for the metrics pairs

    def say(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    async def run_set(self, label: str, status_range: tuple[int, int] | None) -> SetResult:
        result = SetResult(label)
        tag = label[0]
        async with self.pool.acquire() as conn:
            ingest = await seed.open_orders(conn, INGEST_ORDERS, f"{tag}i", f"order_I{tag}_")
            alone = await seed.open_orders(conn, INGEST_ORDERS, f"{tag}a", f"order_A{tag}_")
            steady = await seed.open_orders(conn, STEADY_RATE * STEADY_SECONDS, f"{tag}s",
                                            f"order_S{tag}_")
            await seed.open_orders(conn, PGBENCH_ORDERS, f"{tag}p", f"order_P{tag}_")
            checkout = await seed.pending_bookings(conn, CHECKOUT_BOOKINGS, f"{tag}c")
            await conn.execute("ANALYZE")
            result.bookings_in_db = await conn.fetchval("SELECT count(*) FROM bookings")
        self.say(f"{label}: seeded; {result.bookings_in_db} bookings in the database")

        # Each phase starts with the planner's statistics current, as autovacuum keeps them
        # in a running system: without it, one phase runs on plans made before the rows
        # the phases before it wrote (an outbox analysed empty, then scanned whole).
        await self.analyze()
        result.ingest_alone = await self.webhook_burst(alone, f"{tag}a", notifier=False)
        await self.analyze()
        result.ingest = await self.webhook_burst(ingest, f"{tag}i")
        await self.analyze()
        result.steady = await self.webhook_steady(steady, tag)
        await self.analyze()
        result.pgbench = await self.pgbench_limit(f"order_P{tag}_")
        await self.analyze()
        result.checkout, result.cpu_ms = await self.checkout(checkout)
        low, high = status_range or (ingest[0]["booking_id"], ingest[-1]["booking_id"])
        env = {"BENCH_LO": str(low), "BENCH_HI": str(high)}
        order_url = f"http://127.0.0.1:{self.stack.ports['order_service']}"
        # Where a status request's CPU goes, per process: the figure noise barely moves,
        # and the one that says how far each hop is from the ceiling app's own cost.
        pids = {name: self.pids_of(name) for name in ("gateway", "order_service")}
        # Warm PostgreSQL's cache with the same reads first: otherwise the first run after
        # the history pays the misses of its first pass over a million rows, and the next
        # one (direct) finds them cached. A running system has its working set warm.
        wrk.run(order_url, "status.lua", seconds=STATUS_WARM_SECONDS, connections=CONNECTIONS,
                env=env)
        if self.ceiling_pid is not None:
            pids["ceiling"] = [self.ceiling_pid]
        for name, url, seconds in (("status_gateway", self.stack.gateway, STATUS_SECONDS),
                                   ("status_direct", order_url, STATUS_SECONDS),
                                   ("ceiling", self.ceiling_url, CEILING_SECONDS)):
            figures, result.request_cpu_us[name] = await self.status_load(url, env, seconds,
                                                                          pids)
            setattr(result, name, figures)
            self.say(f"{label}: {name} {figures.rate:.0f} req/s, p99 {figures.p99_ms:.1f} ms,"
                     f" {figures.status_errors} non-2xx")
        return result

    async def analyze(self) -> None:
        await self.pool.execute("ANALYZE")

    async def status_load(self, url: str, env: dict, seconds: float,
                          pids: dict[str, list[int]]) -> tuple[wrk.WrkResult, dict]:
        """payment-status with `wrk -c64` for `seconds`, and the CPU microseconds each
        process of `pids` (and "ours": all of them; "postgres": this database's backends)
        spent per request answered."""
        before = await self.cpu_snapshot(pids, None)
        figures = await asyncio.to_thread(wrk.run, url, "status.lua", seconds=seconds,
                                          connections=CONNECTIONS, env=env)
        after = await self.cpu_snapshot(pids, None)
        return figures, {key: _spent(before, after, key) * 1e6 / max(1, figures.requests)
                         for key in (*pids, "ours", "postgres")}

    # --- what the metrics cost ------------------------------------------------------------

    async def metrics_cost(self, status_range: tuple[int, int]) -> dict:
        """payment-status through gateway + order_service pairs with metrics on and through
        as many identical pairs with METRICS_ENABLED=false (no /metrics, no request
        counting), started the same way on the same database. Several pairs of each: the
        same process started twice differs by up to ±5% in CPU per request (where the kernel
        puts its stack and heap is randomised at every start; two pairs of one setting gave
        1.008 one time and 1.053 another), more than counting costs. Each round loads every
        pair alone in turn, on and off alternating, the order reversed every round (a
        machine that gets busier or quieter falls on both alike). A pair's figure is its
        median over the rounds, a setting's the mean of its pairs; the ratio is the median
        over the rounds of that round's on/off ratio (each round's pairs ran within seconds
        of each other). (Loading two pairs at once is no fairer: the one started second
        won by 10-20% whichever setting it had.)
        Status is the worst case: the smallest handler, so counting it in two services is
        the largest share of its cost. CPU per request is the pair's own, from /proc."""
        env = {"BENCH_LO": str(status_range[0]), "BENCH_HI": str(status_range[1])}
        labels = [(setting, i) for i in range(METRICS_PAIRS) for setting in ("on", "off")]
        runs: dict[tuple[str, int], list[tuple[float, float]]] = {label: [] for label in labels}
        pairs = {}
        try:
            for setting, i in labels:
                log_dir = self.workdir / f"metrics-{setting}{i}"
                log_dir.mkdir(exist_ok=True)
                pair = Stack(self.database_url, self.amqp_url, log_dir, {
                    **self.stack_env, "DB_POOL_MAX": "5",  # 8 pairs' pools fit in 100
                    "METRICS_ENABLED": "true" if setting == "on" else "false"})
                pairs[setting, i] = pair
                for name in ("order_service", "gateway"):
                    pair.start(name)
                wrk.run(pair.gateway, "status.lua", seconds=1, connections=CONNECTIONS,
                        env=env)  # warm: pools filled, statements prepared
            pids = {label: [pair.procs[name].pid for name in ("gateway", "order_service")]
                    for label, pair in pairs.items()}
            wrk.run(pairs[labels[0]].gateway, "status.lua", seconds=STATUS_WARM_SECONDS,
                    connections=CONNECTIONS, env=env)  # PostgreSQL's cache, for every pair
            for round_ in range(METRICS_ROUNDS):
                for label in labels if round_ % 2 == 0 else labels[::-1]:
                    before = sum(map(procstat.cpu_seconds, pids[label]))
                    result = await asyncio.to_thread(
                        wrk.run, pairs[label].gateway, "status.lua", seconds=METRICS_SECONDS,
                        connections=CONNECTIONS, env=env)
                    cpu = sum(map(procstat.cpu_seconds, pids[label])) - before
                    runs[label].append((result.rate, cpu * 1e6 / max(1, result.requests)))
        finally:
            for pair in pairs.values():
                pair.stop_all()
        per_pair = {label: (statistics.median(r for r, _ in results),
                            statistics.median(c for _, c in results))
                    for label, results in runs.items()}
        out: dict = {"pairs": METRICS_PAIRS, "rounds": METRICS_ROUNDS, "seconds": METRICS_SECONDS}
        for setting in ("on", "off"):
            mine = [per_pair[setting, i] for i in range(METRICS_PAIRS)]
            out[setting] = {"rate": statistics.mean(r for r, _ in mine),
                            "cpu_us": statistics.mean(c for _, c in mine),
                            "pair_cpu_us": [c for _, c in mine]}
        def round_ratio(column: int, round_: int) -> float:
            on, off = ([runs[setting, i][round_][column] for i in range(METRICS_PAIRS)]
                       for setting in ("on", "off"))
            return statistics.mean(on) / statistics.mean(off)

        for key, column in (("rate_ratio", 0), ("cpu_ratio", 1)):
            out[key] = statistics.median(round_ratio(column, r) for r in range(METRICS_ROUNDS))
        out["counting_us"] = await counting_cost.counting_us()
        out["instructions"] = {setting: await asyncio.to_thread(
            counting_cost.instructions_per_request, self.database_url, self.amqp_url,
            self.stack_env, setting == "on", status_range) for setting in ("on", "off")}
        self.say(f"metrics on: {out['on']['rate']:.0f} req/s, {out['on']['cpu_us']:.0f} us CPU"
                 f" per request (pairs {', '.join(f'{c:.0f}' for c in out['on']['pair_cpu_us'])});"
                 f" off: {out['off']['rate']:.0f} req/s, {out['off']['cpu_us']:.0f} us (pairs"
                 f" {', '.join(f'{c:.0f}' for c in out['off']['pair_cpu_us'])}); on/off: req/s"
                 f" {out['rate_ratio']:.3f}, CPU {out['cpu_ratio']:.3f}; instructions per request"
                 f" in order_service {out['instructions']['on']:,.0f} on,"
                 f" {out['instructions']['off']:,.0f} off")
        return out

    # --- webhook ingest -----------------------------------------------------------------

    async def webhook_burst(self, orders: list[dict], tag: str, *, notifier: bool = True
                            ) -> dict:
        """`notifier=False`: the notifier is stopped while wrk runs, as it has nothing to do
        while pgbench runs (its events go to a queue that drops them): the ingest path
        alone on the machine. Then it starts and drains the burst's backlog alone."""
        bodies = self.workdir / f"ingest-{tag}.tsv"
        seed.write_deliveries(bodies, orders, tag)
        if not notifier:
            self.stack.stop("notifier")
        seconds = INGEST_SECONDS if notifier else INGEST_ALONE_SECONDS
        figures = wrk.run(self.stack.gateway, "webhook.lua", seconds=seconds,
                          connections=CONNECTIONS, env={"BENCH_BODIES": str(bodies)})
        if not notifier:
            self.stack.start("notifier")
        keys = [f"id:evt_{tag}{o['booking_id']}" for o in orders]
        applied = await self.pool.fetchval(
            "SELECT count(*) FROM webhook_events WHERE event_key = ANY($1) AND outcome = 'applied'",
            keys)
        ids = [o["booking_id"] for o in orders]
        await self.wait_confirmed(ids, applied)
        # Each phase starts with no mail of an earlier one still going out: the mails
        # (which draw the passes) would otherwise be the next phase's load and CPU.
        mails_s = await self.wait_mails_sent(ids)
        times = await self.pool.fetchrow(
            "SELECT min(w.received_at) AS first_received, max(w.received_at) AS last_received,"
            " min(b.confirmed_at) AS first_confirmed, max(b.confirmed_at) AS last_confirmed,"
            " count(b.confirmed_at) AS confirmed"
            " FROM webhook_events w JOIN payments p ON p.razorpay_order_id = w.razorpay_order_id"
            " JOIN bookings b ON b.id = p.booking_id"
            " WHERE w.event_key = ANY($1) AND w.outcome = 'applied'", keys)
        received_span = _seconds(times["last_received"] - times["first_received"])
        confirm_span = _seconds((times["last_confirmed"] or times["last_received"])
                                - times["first_received"])
        drain_span = _seconds((times["last_confirmed"] or times["last_received"])
                              - (times["first_confirmed"] or times["last_received"]))
        out = {
            "seconds": seconds, "sent": figures.requests, "applied": applied,
            "duplicates": max(0, figures.requests - len(orders)),
            "non_2xx": figures.status_errors + figures.socket_errors,
            "rate": applied / figures.seconds, "p99_ms": figures.p99_ms,
            "confirmed": times["confirmed"],
            "confirm_rate": times["confirmed"] / confirm_span if confirm_span else 0.0,
            # first confirmation to last: with the notifier stopped, its rate alone
            "drain_rate": times["confirmed"] / drain_span if drain_span else 0.0,
            "ingest_rate_db": applied / received_span if received_span else 0.0,
            "drain_s": confirm_span - received_span,
            "mails_drain_s": mails_s,
        }
        if notifier:
            self.say(f"webhook burst: {figures.requests} sent, {out['non_2xx']} failed;"
                     f" {out['rate']:.0f}/s applied ({applied}),"
                     f" notifier {out['confirm_rate']:.0f}/s, drained {out['drain_s']:.1f}s after")
        else:
            self.say(f"webhook burst, notifier stopped: {figures.requests} sent,"
                     f" {out['non_2xx']} failed; {out['rate']:.0f}/s applied ({applied});"
                     f" then the notifier alone drained it at {out['drain_rate']:.0f}/s")
        return out

    async def webhook_steady(self, orders: list[dict], tag: str) -> dict:
        bodies = self.workdir / f"steady-{tag}.tsv"
        seed.write_deliveries(bodies, orders, f"{tag}s")
        sender = subprocess.run(
            [sys.executable, "-m", "bench.paced", f"{self.stack.gateway}/api/razorpay/webhook",
             str(bodies), str(STEADY_RATE), str(STEADY_SECONDS)],
            capture_output=True, text=True, timeout=STEADY_SECONDS + 60, check=True)
        sent = json.loads(sender.stdout.strip().splitlines()[-1])
        ids = [o["booking_id"] for o in orders]
        await self.wait_confirmed(ids, sent["ok"])
        await self.wait_mails_sent(ids)
        rows = await self.pool.fetch(
            "SELECT extract(epoch FROM b.confirmed_at - w.received_at) * 1000 AS ms"
            " FROM webhook_events w JOIN payments p ON p.razorpay_order_id = w.razorpay_order_id"
            " JOIN bookings b ON b.id = p.booking_id"
            " WHERE w.event_key = ANY($1) AND w.outcome = 'applied'",
            [f"id:evt_{tag}s{i}" for i in ids])
        latencies = sorted(float(r["ms"]) for r in rows if r["ms"] is not None)
        out = {"rate": STEADY_RATE, "sent": sent["sent"], "ok": sent["ok"],
               "unconfirmed": len(rows) - len(latencies), "sender_late_p99_ms":
               sent["late_p99_ms"], **_percentiles(latencies)}
        self.say(f"webhook steady {STEADY_RATE}/s: received -> confirmed p50 {out['p50']:.0f} ms,"
                 f" p99 {out['p99']:.0f} ms, {out['unconfirmed']} unconfirmed")
        return out

    async def wait_confirmed(self, booking_ids: list[int], expected: int) -> None:
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline:
            confirmed = await self.pool.fetchval(
                "SELECT count(*) FROM bookings WHERE id = ANY($1) AND status = 'confirmed'",
                booking_ids)
            if confirmed >= expected:
                return
            await asyncio.sleep(0.2)
        self.say(f"notifier did not catch up within {DRAIN_LIMIT}s")

    # --- the database's own limit -------------------------------------------------------

    async def pgbench_limit(self, order_prefix: str) -> dict:
        script = self.workdir / "webhook_transaction.sql"
        script.write_text(pgbench.webhook_transaction(order_prefix, SINK))
        await self.pool.execute(f"DROP SEQUENCE IF EXISTS {pgbench.SEQUENCE};"
                                f" CREATE SEQUENCE {pgbench.SEQUENCE}")
        out = {}
        async with await aio_pika.connect(self.amqp_url) as amqp:
            # pgbench's events must not become work for the notifier: a queue that drops
            # them takes them (the relay publishes them as it would any event).
            channel = await amqp.channel()
            exchange = await channel.get_exchange(self.stack.env.get("AMQP_EXCHANGE",
                                                                     "a6pay.events"))
            sink = await channel.declare_queue("a6pay.bench.sink", auto_delete=True,
                                               arguments={"x-max-length": 0})
            await sink.bind(exchange, SINK)
            for clients in (1, 8):
                try:
                    out[f"c{clients}"] = await asyncio.to_thread(
                        pgbench.run, pgbench.over_tcp(self.database_url), script,
                        clients=clients,
                        seconds=PGBENCH_SECONDS)
                except pgbench.PgbenchFailed as exc:  # reported as missing, the run goes on
                    self.say(str(exc).strip().splitlines()[-1])
                    out[f"c{clients}"] = float("nan")
            used = await self.pool.fetchval(f"SELECT last_value FROM {pgbench.SEQUENCE}")
            if used > PGBENCH_ORDERS:
                self.say(f"pgbench ran out of fresh orders ({used} > {PGBENCH_ORDERS})")
            await self.wait_outbox_empty()
        self.say(f"pgbench webhook transaction: {out['c1']:.0f} tx/s with 1 client,"
                 f" {out['c8']:.0f} with 8")
        return out

    async def wait_mails_sent(self, booking_ids: list[int]) -> float:
        """Seconds until no mail of these bookings is pending."""
        started = time.monotonic()
        while time.monotonic() < started + MAIL_DRAIN_LIMIT:
            if not await self.pool.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM notifications WHERE booking_id = ANY($1)"
                    " AND state = 'pending')", booking_ids):
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        self.say("mails still pending")
        return float("nan")

    async def wait_outbox_empty(self) -> None:
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline:
            if not await self.pool.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)"):
                return
            await asyncio.sleep(0.2)
        self.say("the outbox did not drain")

    # --- checkout and CPU per booking ---------------------------------------------------

    async def checkout(self, bookings: list[dict],
                       seconds: float = CHECKOUT_SECONDS) -> tuple[dict, dict]:
        our_pids = {name: self.pids_of(name) for name in OUR_SERVICES}
        rabbit = procstat.listening_pid(urlsplit(self.amqp_url).port or 5672)
        before = await self.cpu_snapshot(our_pids, rabbit)
        create, verify, paid = [], [], []
        todo = iter(bookings)
        deadline = time.monotonic() + seconds
        started = time.perf_counter()
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CHECKOUT_CONCURRENCY * 2)) as http:

            async def worker():
                for booking in todo:
                    if time.monotonic() > deadline:
                        return
                    if await self.one_checkout(http, booking, create, verify):
                        paid.append(booking["booking_id"])

            await asyncio.gather(*(worker() for _ in range(CHECKOUT_CONCURRENCY)))
        wall = time.perf_counter() - started
        await self.wait_confirmed(paid, len(paid))
        await self.wait_outbox_empty()
        # The confirmation mail (which draws the passes when verify did not) is part of a
        # paid booking's cost: count until every one of them is sent.
        await self.wait_mails_sent(paid)
        await asyncio.sleep(0.5)  # the last effects' own work (relay marks, acks)
        after = await self.cpu_snapshot(our_pids, rabbit)
        n = max(1, len(paid))
        cpu = {key: _spent(before, after, key) * 1000 / n
               for key in ("ours", "postgres", "rabbitmq", *our_pids)}
        out = {"bookings": len(paid), "seconds": wall, "rate": len(paid) / wall,
               "create": _percentiles([s * 1000 for s in create]),
               "verify": _percentiles([s * 1000 for s in verify])}
        self.say(f"checkout: {out['rate']:.1f} bookings/s (16 at once), create p50"
                 f" {out['create']['p50']:.0f} ms, verify p50 {out['verify']['p50']:.0f} ms;"
                 f" CPU {cpu['ours']:.1f} ms per booking")
        return out, cpu

    async def one_checkout(self, http, booking, create: list, verify: list) -> bool:
        t0 = time.perf_counter()
        status, order, _ = await api_client.create_order(http, self.stack, booking)
        create.append(time.perf_counter() - t0)
        if status != 200:
            self.say(f"create-order answered {status}: {order}")
            return False
        payment = await api_client.pay(http, self.stack, order["order_id"])
        t0 = time.perf_counter()
        status, body, _ = await api_client.verify(http, self.stack, booking, payment)
        verify.append(time.perf_counter() - t0)
        if status != 200:
            self.say(f"verify-payment answered {status}: {body}")
        return status == 200

    def pids_of(self, service: str) -> list[int]:
        """Every process of a service (WORKERS runs several)."""
        return [self.stack.procs[key].pid
                for key in replica_names(service, self.stack.workers)]

    async def cpu_snapshot(self, our_pids: dict[str, list[int]], rabbit: int | None) -> dict:
        # The client backends of this database (pools keep theirs for the whole run), each
        # on its own: autovacuum workers come and go with the writes of earlier phases, and
        # one there at the end only would count its whole life against this phase.
        backends = [r["pid"] for r in await self.pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend'")]
        snap = {name: sum(map(procstat.cpu_seconds, pids)) for name, pids in our_pids.items()}
        snap["ours"] = sum(snap.values())
        snap["postgres"] = {p: procstat.cpu_seconds(p, with_children=False) for p in backends}
        snap["rabbitmq"] = procstat.cpu_seconds(rabbit, with_children=False) if rabbit else 0.0
        return snap


def _spent(before: dict, after: dict, key: str) -> float:
    """CPU seconds between two cpu_snapshots; a backend opened meanwhile counts from zero."""
    if key == "postgres":
        return sum(cpu - before[key].get(pid, 0.0) for pid, cpu in after[key].items())
    return after[key] - before[key]


def _seconds(delta) -> float:
    return delta.total_seconds() if delta is not None else 0.0


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    values = sorted(values)
    return {"n": len(values), "p50": statistics.median(values),
            "p99": values[min(len(values) - 1, int(0.99 * len(values)))], "max": values[-1]}


def start_ceiling(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = infra.free_port()
    log = open(workdir / "ceiling.log", "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen([sys.executable, "-m", "bench.ceiling", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the ceiling app did not start")


async def run(history: int, output: Path) -> None:
    wrk.require_wrk()
    db_url = infra.database_url(infra.unique_name("a6pay_bench"))
    vhost = infra.unique_name("a6pay_bench_vhost")
    await create_database_if_missing(db_url)
    await migrate(db_url)
    infra.create_vhost(vhost)
    amqp_url = infra.amqp_url(vhost)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="a6pay-bench-") as tmp:
        workdir = Path(tmp)
        ceiling, ceiling_url = start_ceiling(workdir)
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
        try:
            stack_env = {**NO_RATE_LIMITS, "LOG_LEVEL": "WARNING"}
            with running_stack(db_url, amqp_url, stack_env) as stack:
                bench = Bench(stack, pool, db_url, amqp_url, ceiling_url, workdir,
                              ceiling_pid=ceiling.pid)
                bench.stack_env = stack_env
                empty = await bench.run_set("empty", None)
                bench.say(f"adding a history of {history} paid bookings")
                filled = await add_paid_history(db_url, history)
                bench.say(f"history written in {filled.seconds:.1f}s")
                full = await bench.run_set("history", (filled.first_booking,
                                                       filled.last_booking))
                rss = {name: procstat.rss_mb(stack.procs[name].pid) for name in OUR_SERVICES}
            # With the stack stopped: its pools' connections leave room for the pairs'. The
            # newest 50,000 bookings: what counting costs, not how warm PostgreSQL's cache is
            # yet over a million (the first pair loaded would pay the most misses).
            metrics = await bench.metrics_cost((filled.last_booking - 50_000,
                                                filled.last_booking))
        finally:
            await pool.close()
            ceiling.terminate()
            ceiling.wait(timeout=10)
            await infra.drop_database(db_url)
            infra.delete_vhost(vhost)
    print_and_write(empty, full, rss, metrics, history=history, history_seconds=filled.seconds,
                    total_seconds=time.perf_counter() - started, output=output)
    # Settlement reconciliation: its own databases and processes, with the stack stopped.
    await settlement_bench.run(sorted({100_000, history}), output / "settlements.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=int, default=1_000_000,
                        help="paid bookings added between the two passes")
    parser.add_argument("--output", type=Path, default=Path("docs"),
                        help="where benchmarks.md and benchmarks.png go")
    args = parser.parse_args()
    asyncio.run(run(args.history, args.output))


if __name__ == "__main__":
    main()
