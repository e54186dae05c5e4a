"""History does not matter: every query on a request or event path is index-backed.

The real SQL strings (imported from the code) are EXPLAINed against a database holding a
few tens of thousands of bookings with their payments, deliveries, passes, mails, inbox and
outbox rows, analyzed, so the planner chooses as it would in production. A sequential scan
of a table that grows with history fails the test, with the custom plan (the bound values)
and with the generic plan (what a prepared statement may switch to after a few runs).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notifier import handlers as notifier_sql
from notifier import mail_outbox as mail_outbox_sql
from notifier import mail_sender as mail_sql
from notifier import refund_handlers as refund_notes_sql
from notifier import report as report_sql
from notifier import scan_handlers as scan_notes_sql
from order_service import handlers as order_sql
from order_service import reconciler as reconcile_sql
from order_service import repair as repair_sql
from shared import capture_hold as capture_hold_sql
from shared import disputes as disputes_sql
from shared import outbox as outbox_sql
from shared import pass_store as pass_store_sql
from shared import payments as payments_sql
from testkit.history import GROWING_TABLES
from tests.support.plans import HISTORY, explain, seq_scans
from verification_service import handlers as verify_sql
from webhook_service import handlers as webhook_sql

pytestmark = pytest.mark.timeout(120)


def hot_queries(booking: dict) -> dict[str, tuple[str, tuple]]:
    """name -> (SQL, arguments) for every query a request or an event runs."""
    bid, cid, order = booking["booking_id"], booking["customer_id"], booking["order_id"]
    event = uuid.uuid4()
    payload = {"event": "payment.captured"}
    return {
        # create-order and payment-status
        "order.booking": (order_sql.BOOKING, (bid, cid)),
        "order.claim_booking": (order_sql.CLAIM_BOOKING, (bid, event, timedelta(seconds=26))),
        "order.release_claim": (order_sql.RELEASE_CLAIM, (bid, event)),
        "order.drop_claim": (order_sql.DROP_CLAIM, (bid,)),
        "order.lock_booking_status": (order_sql.LOCK_BOOKING_STATUS, (bid,)),
        "order.booking_payments": (order_sql.BOOKING_PAYMENTS, (bid,)),
        "order.insert_payment": (order_sql.INSERT_PAYMENT, (
            bid, cid, "order_plan", "rcpt_plan", 100000, "INR", timedelta(minutes=15))),
        "order.recorded_payment": (order_sql.RECORDED_PAYMENT, (bid, order)),
        "order.supersede_order": (order_sql.SUPERSEDE_ORDER, (bid, order_sql.SUPERSEDABLE)),
        "order.payment_status": (order_sql.PAYMENT_STATUSES, ([bid], [None])),
        "order.payment_status_owner": (order_sql.PAYMENT_STATUSES, ([bid], [cid])),
        "order.payment_status_batch": (order_sql.PAYMENT_STATUSES, (
            [bid, bid + 1, bid + 2] * 40, [None, cid, None] * 40)),
        # reconciler (every poll)
        "reconcile.claim_due": (reconcile_sql.CLAIM_DUE, (50, timedelta(minutes=2))),
        "reconcile.claim_second_looks": (reconcile_sql.CLAIM_SECOND_LOOKS,
                                         (50, timedelta(minutes=15), timedelta(minutes=2))),
        # stuck-payment sweep (every reconciler tick) and `a6pay stuck`
        "repair.claim_stuck": (repair_sql.CLAIM_STUCK, (
            timedelta(minutes=5), 300.0, 3600.0, 100)),
        "repair.count_stuck": (repair_sql.COUNT_STUCK, (timedelta(minutes=5),)),
        "repair.list_stuck": (repair_sql.LIST_STUCK, (timedelta(minutes=5),)),
        "reconcile.record_attempt": (reconcile_sql.RECORD_ATTEMPT, (
            order, 1, timedelta(minutes=15), "captured", datetime.now(UTC))),
        # the state machine: verify, webhook and reconciliation
        "payments.record_outcome": (payments_sql.RECORD_OUTCOME, (
            order, "captured", "pay_plan", ["created", "authorized", "failed"], None, None,
            100000, "INR")),
        "payments.by_order": (payments_sql.PAYMENT_BY_ORDER, (order,)),
        "verify.order_with_booking": (verify_sql.ORDER_WITH_BOOKING, (order,)),
        # webhook ingest
        "webhook.record_delivery": (webhook_sql.RECORD_DELIVERIES, delivery_columns(
            [order], payload)),
        "webhook.record_deliveries_64": (webhook_sql.RECORD_DELIVERIES, delivery_columns(
            [f"{order}{n}" for n in range(64)], payload)),
        # dispute webhooks: the disputed payment's lock, then the dispute's row
        "disputes.lock_disputed": (disputes_sql.LOCK_DISPUTED, ("pay_plan",)),
        # outbox: producers and relay
        "outbox.insert": (outbox_sql.INSERT_EVENT, (event, "payment.captured",
                                                     json.dumps(payload))),
        "outbox.claim_unsent": (outbox_sql.CLAIM_UNSENT, (100,)),
        "outbox.mark_published": (outbox_sql.MARK_PUBLISHED, ([event],)),
        "outbox.count_attempt": (outbox_sql.COUNT_ATTEMPT, ([event],)),
        "outbox.lag": (outbox_sql.OUTBOX_LAG, ()),
        # notifier
        "notifier.inbox": (notifier_sql.INSERT_INBOX, ("notifier", event, b"f")),
        "notifier.failed_attempt": (notifier_sql.FAILED_ATTEMPT, (order, bid, cid)),
        "notifier.order_on_record": (notifier_sql.ORDER_ON_RECORD, (order, bid, cid)),
        "notifier.cancellation": (refund_notes_sql.CANCELLATION, (bid, cid)),
        "notifier.refund": (refund_notes_sql.REFUND, (1, bid, cid, 100000)),
        "notifier.fully_refunded": (refund_notes_sql.FULLY_REFUNDED, (1,)),
        "notifier.scan_on_record": (scan_notes_sql.SCAN_ON_RECORD, (
            bid, "collection", "collected", cid)),
        "notifier.booking_details": (notifier_sql.BOOKING_DETAILS, (bid,)),
        "notifier.confirm_booking": (notifier_sql.CONFIRM_BOOKINGS, (
            "notifier", [event], [bid], [cid], [order], ["pay_plan"], [100000], ["{}"],
            [bid, bid], ["collection", "return"], ["t", "u"], [b"f"], timedelta(seconds=1))),
        "notifier.confirm_bookings_32": (notifier_sql.CONFIRM_BOOKINGS, (
            "notifier", [uuid.uuid4() for _ in range(32)], [bid + n for n in range(32)],
            [cid] * 32, [order] * 32, ["pay_plan"] * 32, [100000] * 32, ["{}"] * 32,
            [bid + n for n in range(32) for _ in range(2)], ["collection", "return"] * 32,
            ["t"] * 64, [b"f"] * 32, timedelta(seconds=1))),
        # passes: the notifier or verify-payment, whoever needs them first
        "passes.stored": (pass_store_sql.STORED_PASSES, (bid,)),
        "passes.booking_paid": (pass_store_sql.BOOKING_PAID, (bid,)),
        "capture.withhold": (capture_hold_sql.WITHHOLD, (
            order, "booking_cancelled", "order_superseded")),
        "passes.store_images": (pass_store_sql.STORE_IMAGES, (
            bid, ["collection"], ["t"], ["u"])),
        # the mail outbox: enqueue (any service) and the notifier's sender (every poll)
        "mail.enqueue": (mail_outbox_sql.INSERT, (
            bid, cid, "refund_processed", f"plan:{bid}", "{}")),
        "mail.claim_due": (mail_sql.CLAIM_DUE, (20, timedelta(minutes=2))),
        "mail.booking": (mail_sql.BOOKING_FOR_MAIL, (bid, True)),
        "mail.mark_sent": (mail_sql.MARK_SENT, (1, "<m@x>")),
        "mail.mark_failed": (mail_sql.MARK_FAILED, (1, "550")),
        "mail.mark_retry": (mail_sql.MARK_RETRY, (1, timedelta(seconds=5), "421")),
        "mail.release": (mail_sql.RELEASE, ([1, 2],)),
        "mail.count_pending": (mail_sql.COUNT_PENDING, ()),
        # `a6pay booking ID` (support looks one booking up)
        "report.booking": (report_sql.BOOKING, (bid,)),
        "report.payment_status": (report_sql.PAYMENT_STATUS, (bid,)),
        "report.passes": (report_sql.PASSES, (bid,)),
        "report.notifications": (report_sql.NOTIFICATIONS, (bid,)),
    }


def delivery_columns(orders: list[str], payload: dict) -> tuple:
    """RECORD_DELIVERIES's arguments: a first payment.captured for each order."""
    n = len(orders)
    return ([f"id:evt_{o}" for o in orders], ["payment.captured"] * n, orders,
            [f"pay_{o}" for o in orders], [None] * n, ["captured"] * n, [100000] * n,
            ["INR"] * n, [None] * n, [None] * n, ["created,failed,authorized"] * n,
            [json.dumps(payload)] * n)


async def test_the_history_is_big_enough_for_the_planner_to_choose(history_db):
    pool, _ = history_db
    for table in GROWING_TABLES:
        rows = await pool.fetchval(
            "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", table)
        assert rows >= HISTORY / 10, (table, rows)


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_no_hot_query_scans_a_growing_table(history_db, generic):
    pool, booking = history_db
    scans = {}
    async with pool.acquire() as conn:
        for name, (sql, args) in hot_queries(booking).items():
            plan = await explain(conn, sql, args, generic=generic)
            growing = [t for t in seq_scans(plan) if t in GROWING_TABLES]
            if growing:
                scans[name] = growing
    assert scans == {}


async def test_the_check_sees_a_sequential_scan(history_db):
    """The detector itself: a lookup by a column no index covers is reported."""
    pool, booking = history_db
    async with pool.acquire() as conn:
        plan = await explain(conn, "SELECT * FROM payments WHERE receipt = $1",
                             ("a6-none",), generic=False)
    assert seq_scans(plan) == ["payments"]



def node_types(plan: dict) -> list[str]:
    return [plan["Node Type"], *(t for child in plan.get("Plans", ()) for t in node_types(child))]


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_the_relay_claims_a_backlog_in_index_order(history_db, generic):
    """Under a backlog (a burst, a broker outage) each claim reads its batch off an index in
    claim order and stops: no sort of every unsent row for every batch."""
    pool, _ = history_db
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(
                "INSERT INTO outbox (id, routing_key, body, attempts) SELECT gen_random_uuid(),"
                " 'payment.captured', '{}', (g % 50 = 0)::int FROM generate_series(1, 5000) g")
            await conn.execute("ANALYZE outbox")
            plan = await explain(conn, outbox_sql.CLAIM_UNSENT, (100,), generic=generic)
        finally:
            await transaction.rollback()  # the rows and their statistics
    assert "Sort" not in node_types(plan), plan
    assert "Seq Scan" not in node_types(plan), plan
