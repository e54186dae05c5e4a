"""What PostgreSQL's Unix socket saves against loopback TCP: `python -m bench.db_socket_ab`
runs two stacks on one database, one connecting to PostgreSQL over 127.0.0.1:5432 and one
over the server's socket, and loads payment-status straight to each order_service in turn
(`wrk -c64`, the order reversed every round). Per round it reads order_service's CPU and
that of the PostgreSQL backends each stack holds (TCP backends have a client address, socket
ones none) per request; it prints each figure's median over the rounds. Run it alone."""

from __future__ import annotations

import argparse
import asyncio
import statistics
from urllib.parse import urlsplit

from bench import procstat, wrk
from bench.load import CONNECTIONS, NO_RATE_LIMITS
from shared.settings import POSTGRES_SOCKET_DIR, load_settings
from testkit import infra
from testkit.history import add_paid_history
from testkit.stack import running_stack


async def backend_cpu(pool, over_socket: bool) -> float:
    rows = await pool.fetch("SELECT pid, client_addr FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    return sum(procstat.cpu_seconds(row["pid"], with_children=False) for row in rows
               if (row["client_addr"] is None) == over_socket)


async def run(rounds: int, seconds: float, bookings: int) -> None:
    wrk.require_wrk()
    env = {**NO_RATE_LIMITS, "LOG_LEVEL": "WARNING"}
    vhost = infra.unique_name("a6pay_dbsock_vhost")
    infra.create_vhost(vhost)
    try:
        async with infra.own_database(load_settings()) as (settings, pool):
            name = urlsplit(settings.database_url).path.lstrip("/")
            tcp_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
            socket_url = f"postgresql://postgres@/{name}?host={POSTGRES_SOCKET_DIR}"
            filled = await add_paid_history(tcp_url, bookings)
            reads = {"BENCH_LO": str(filled.first_booking), "BENCH_HI": str(filled.last_booking)}
            amqp = infra.amqp_url(vhost)
            with running_stack(tcp_url, amqp, env) as tcp, \
                    running_stack(socket_url, amqp, env) as unix:
                stacks = {"tcp": tcp, "socket": unix}
                urls = {way: f"http://127.0.0.1:{stack.ports['order_service']}"
                        for way, stack in stacks.items()}
                for url in urls.values():  # warm: pools filled, statements prepared
                    wrk.run(url, "status.lua", seconds=2, connections=CONNECTIONS, env=reads)
                figures: dict[str, list[tuple[float, float, float]]] = {k: [] for k in stacks}
                for round_ in range(rounds):
                    for way in (["tcp", "socket"] if round_ % 2 == 0 else ["socket", "tcp"]):
                        pid = stacks[way].procs["order_service"].pid
                        cpu = procstat.cpu_seconds(pid)
                        pg = await backend_cpu(pool, way == "socket")
                        done = await asyncio.to_thread(wrk.run, urls[way], "status.lua",
                                                       seconds=seconds, connections=CONNECTIONS,
                                                       env=reads)
                        n = max(1, done.requests)
                        figures[way].append((
                            done.rate, (procstat.cpu_seconds(pid) - cpu) * 1e6 / n,
                            (await backend_cpu(pool, way == "socket") - pg) * 1e6 / n))
        print(f"payment-status straight to order_service, median of {rounds} rounds:")
        for way, rows in figures.items():
            rate, service, backends = (statistics.median(r[i] for r in rows) for i in range(3))
            print(f"  {way:6}  {rate:7.0f} req/s   order_service {service:6.1f} µs"
                  f"   PostgreSQL {backends:6.1f} µs a request")
    finally:
        infra.delete_vhost(vhost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--bookings", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.seconds, args.bookings))


if __name__ == "__main__":
    main()
