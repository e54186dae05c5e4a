"""Settlement queries whose cost must not grow with history, EXPLAINed (custom and generic
plans) on the query-plan test's database of paid bookings: no sequential scan of a growing
table. A page of recon items probes the payments index once per item; the ledger, the
unsettled check and the claims read their own ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from order_service import ledger as ledger_sql
from order_service import settlements as settlements_sql
from shared import settlements as shared_sql
from testkit.history import GROWING_TABLES
from tests.support.plans import explain, seq_scans

pytestmark = pytest.mark.timeout(120)


def page_of_items(n: int) -> tuple:
    ids = [f"pay_plan{i}" for i in range(n)]
    return (["setl_plan"] * n, ids, ["payment"] * n, [1] * n, [0] * n, [1] * n, [0] * n,
            [0] * n, ["UTR"] * n, ["order_plan"] * n, [None] * n, [None] * n, ["card"] * n,
            [1_700_000_000] * n, [1_700_000_000] * n)


def settlement_queries() -> dict[str, tuple[str, tuple]]:
    now = datetime.now(UTC)
    month = (now - timedelta(days=400), now - timedelta(days=370))
    return {
        "items.insert_page": (shared_sql.INSERT_ITEMS, page_of_items(1000)),
        "items.totals": (shared_sql.TOTALS, ("setl_plan",)),
        "settlements.claim_due": (settlements_sql.CLAIM_DUE, (100, timedelta(minutes=10))),
        "settlements.of_day": (settlements_sql.OF_DAY, (now,)),
        "unsettled": (settlements_sql.UNSETTLED, (now - timedelta(days=400),
                                                   now - timedelta(days=460))),
        "ledger.month": (ledger_sql.LEDGER, (*month, ledger_sql.AUTHORIZED_DAYS)),
    }


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_no_settlement_query_scans_a_growing_table(history_db, generic):
    pool, _ = history_db
    scans = {}
    async with pool.acquire() as conn:
        for name, (sql, args) in settlement_queries().items():
            plan = await explain(conn, sql, args, generic=generic)
            growing = [t for t in seq_scans(plan) if t in GROWING_TABLES]
            if growing:
                scans[name] = growing
    assert scans == {}
