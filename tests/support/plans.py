"""EXPLAIN a statement as PostgreSQL would run it, custom or generic plan, and find the
tables it reads by a sequential scan: the query-plan tests run every hot statement through
these on a database grown with history."""

from __future__ import annotations

import json
import uuid

HISTORY = 30_000  # paid bookings the planner sees


def seq_scans(plan: dict) -> list[str]:
    """Tables read by a sequential scan anywhere in the plan tree."""
    found = []
    if plan.get("Node Type") == "Seq Scan":
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", ()):
        found += seq_scans(child)
    return found


async def explain(conn, sql: str, args: tuple, *, generic: bool) -> dict:
    if not generic:
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    else:
        # What a prepared statement runs once PostgreSQL stops planning per call: a plan
        # made without the values, so NULLs stand in for them.
        name = "plan_" + uuid.uuid4().hex[:8]
        await conn.execute(f"PREPARE {name} AS {sql}")
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            nulls = f"({', '.join('NULL' for _ in args)})" if args else ""
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}{nulls}")
        finally:
            await conn.execute("RESET plan_cache_mode")
            await conn.execute(f"DEALLOCATE {name}")
    document = json.loads(raw) if isinstance(raw, str) else raw
    return document[0]["Plan"]
