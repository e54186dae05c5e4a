"""The database's own limit for webhook ingest: `pgbench` running the webhook's transaction
with the same statements the webhook service runs (imported from the code, parameters bound
as literals), against the same database, in the same run.

The order each transaction captures comes from a sequence (nextval in the capture's UPDATE,
currval after it), so every transaction does the full work of a first delivery for a fresh
order, as every wrk request does. currval() is volatile: a bare `col = 'x' || currval()`
cannot use an index, so each use is wrapped in a scalar subquery, which the planner
evaluates once and then looks up through the index like a bound parameter.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bench.seed import AMOUNT_PAISE, sample_payload
from shared.events import Envelope, PaymentCaptured
from shared.outbox import INSERT_EVENT
from shared.payment_state import PaymentStatus, allowed_sources
from webhook_service.handlers import RECORD_DELIVERIES

SEQUENCE = "bench_pgbench_order"

# The service's event ids are version-7 UUIDs (shared.events.time_ordered_uuid): the same
# kind of id made in SQL, so the outbox's primary key grows the same way here.
TIME_ORDERED_UUID = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing"
    " substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)"
    " FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)


def _literal(value: str) -> str:
    # pgbench reads ":name" as a variable even inside quotes: write every colon as \x3a.
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace(":", "\\x3a")
    return "E'" + escaped + "'"


def _bind(sql: str, values: dict[int, str]) -> str:
    """Replace $n by SQL expressions; every parameter must be given."""
    return re.sub(r"\$(\d+)", lambda m: values[int(m.group(1))], sql).strip()


def webhook_transaction(order_prefix: str, routing_key: str) -> str:
    """The body of webhook_service.handlers.apply_deliveries for a first payment.captured,
    alone in its batch. The outbox row gets `routing_key`, so the caller can keep the event
    from the notifier."""
    # ids unique per transaction and per run (the prefix differs between passes); nextval
    # in the first argument (in a scalar subquery too): it picks this transaction's order
    key = f"(SELECT {_literal('id:evt_' + order_prefix)} || nextval('{SEQUENCE}'))"
    order = f"(SELECT {_literal(order_prefix)} || currval('{SEQUENCE}'))"
    payment = f"(SELECT {_literal('pay_' + order_prefix)} || currval('{SEQUENCE}'))"
    payload = _literal(json.dumps(sample_payload()))
    allowed = _literal(",".join(allowed_sources(PaymentStatus.CAPTURED)))
    event = PaymentCaptured(booking_id=1, customer_id=1, order_id="order_pgbench",
                            payment_id="pay_pgbench", amount_paise=AMOUNT_PAISE, source="webhook")
    envelope = _literal(json.dumps(Envelope.wrap(event, "webhook_service").model_dump(mode="json")))
    statements = [
        "BEGIN",
        # The delivery is recorded in the capture's statement.
        _bind(RECORD_DELIVERIES, {
            1: f"ARRAY[{key}]", 2: "ARRAY['payment.captured']", 3: f"ARRAY[{order}]",
            4: f"ARRAY[{payment}]", 5: "ARRAY[NULL]", 6: "ARRAY['captured']",
            7: f"ARRAY[{AMOUNT_PAISE}]", 8: "ARRAY['INR']", 9: "ARRAY[NULL]",
            10: "ARRAY[NULL]", 11: f"ARRAY[{allowed}]", 12: f"ARRAY[{payload}]"}),
        _bind(INSERT_EVENT, {1: TIME_ORDERED_UUID, 2: _literal(routing_key), 3: envelope}),
        "COMMIT",
    ]
    # pgbench reads one statement per line unless it ends with a backslash continuation.
    return "".join(" ".join(s.split()) + ";\n" for s in statements)


class PgbenchFailed(RuntimeError):
    pass


def over_tcp(database_url: str) -> str:
    """The same database through the server's TCP port: the reference the webhook ingest
    is judged by is pgbench over TCP, whichever way the services connect."""
    parts = urlsplit(database_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "host"]
    host = parts.hostname or "127.0.0.1"
    user = parts.username or "postgres"
    if parts.password:
        user += f":{parts.password}"
    netloc = f"{user}@{host}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


def run(database_url: str, script: Path, *, clients: int, seconds: float) -> float:
    """Transactions per second."""
    exe = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    for _ in range(15):  # a machine shared with other test runs may be out of connections
        done = subprocess.run(
            [exe, "-n", "-M", "prepared", "-f", str(script), "-c", str(clients),
             "-j", str(min(clients, 2)), "-T", f"{seconds:g}",
             database_url],  # libpq reads the URL itself
            capture_output=True, text=True, timeout=seconds + 60,
        )
        if "too many clients" not in done.stderr:
            break
        time.sleep(2)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    if done.returncode != 0 or match is None:
        raise PgbenchFailed(f"pgbench failed:\n{done.stdout}\n{done.stderr}")
    return float(match.group(1))
