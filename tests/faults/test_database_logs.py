"""PostgreSQL going away and coming back, as an operator reads it: each process says once
that the database is unavailable and once that it is back, and nothing logs a traceback
(asyncpg's own retries to refill a pool are one per attempt, each with a traceback, unless
kept out of the log)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from testkit.api_client import call
from testkit.infra import eventually
from tests.support.logs import log_sizes, new_lines

pytestmark = pytest.mark.e2e

DATABASE_USERS = ("order_service", "verification_service", "webhook_service", "notifier")
OUTAGE_SECONDS = 8  # asyncpg retries a pool's floor after 1, 2 and 4 s: several attempts


async def test_database_outage_is_one_warning_each_way_and_no_traceback(stack, postgres, http):
    async def ready(name: str) -> bool:
        status, _, _ = await call(http, "GET", f"http://127.0.0.1:{stack.ports[name]}/readyz")
        return status == 200

    async def all_ready():
        return all([await ready(name) for name in DATABASE_USERS])

    await eventually(all_ready, timeout=30, interval=0.5)
    since = log_sizes(stack)
    await asyncio.to_thread(postgres.stop)
    try:
        async def database_down_everywhere():
            answers = {}
            for name in DATABASE_USERS:
                _, body, _ = await call(http, "GET",
                                        f"http://127.0.0.1:{stack.ports[name]}/readyz")
                answers[name] = body["checks"]["database"]
            return answers if all(v != "ok" for v in answers.values()) else None

        await eventually(database_down_everywhere, timeout=20, interval=0.5)
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        await asyncio.to_thread(postgres.start)
    await eventually(all_ready, timeout=60, interval=0.5)

    async def everyone_said_back():
        lines = new_lines(stack, since)
        return all(any(line.get("msg") == "database back" for line in lines[name])
                   for name in DATABASE_USERS)

    await eventually(everyone_said_back, timeout=30, interval=0.5)
    noisy = {}
    for name, lines in new_lines(stack, since).items():
        raw = [line["raw"] for line in lines if "raw" in line]
        assert not any("Traceback" in text for text in raw), (name, raw[:5])
        tracebacks = [line for line in lines if "Traceback" in str(line.get("error"))]
        assert not tracebacks, (name, [(t.get("msg"), t.get("error")) for t in tracebacks[:2]])
        loud = Counter(line["msg"] for line in lines
                       if line.get("level") in ("warning", "error", "critical"))
        # the pools say it once each way; whatever else notices the outage (the outbox
        # relay, a periodic job) says so once too
        if loud["database unavailable"] != 1 or loud["database back"] != 1 \
                or max(loud.values()) != 1:
            noisy[name] = loud
    assert not noisy, noisy
