"""Applying webhook deliveries against the real PostgreSQL: deliveries in flight together
share a transaction (a delivery alone is a batch of one), each gets its own outcome, every
effect happens once, and a delivery the database refuses fails alone."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import asyncpg
import pytest

from bench.seed import sample_payload
from shared.coalesce import group_commit
from shared.payment_state import PaymentOutcome, PaymentStatus
from shared.payments import record_outcome
from shared.webhook_outcome import WebhookOutcome
from testkit.factories import make_booking
from testkit.infra import eventually
from webhook_service.delivery import parse_delivery
from webhook_service.handlers import apply_deliveries, apply_delivery


async def open_order(pool, booking=None, suffix=""):
    booking = booking or await make_booking(pool, 150_000)
    order_id = f"order_W{booking['booking_id']:013d}{suffix}"
    await pool.execute(
        "INSERT INTO payments (booking_id, customer_id, razorpay_order_id, receipt,"
        " amount_paise, status) VALUES ($1, $2, $3, 'r', 150000, $4)",
        booking["booking_id"], booking["customer_id"], order_id,
        "failed" if suffix else "created")
    return booking, order_id


def captured(order_id: str, payment_id: str, event: str = "payment.captured") -> dict:
    payload = sample_payload(order_id, payment_id)
    payload["event"] = event
    payload["payload"]["payment"]["entity"]["amount"] = 150_000
    return payload


async def recorded(pool, key: str):
    return await pool.fetchval("SELECT outcome FROM webhook_events WHERE event_key = $1", key)


async def events(pool, order_id: str) -> list[str]:
    rows = await pool.fetch("SELECT routing_key FROM outbox"
                            " WHERE body->'data'->>'order_id' = $1", order_id)
    return [r["routing_key"] for r in rows]


async def status_of(pool, order_id: str) -> str:
    return await pool.fetchval("SELECT status FROM payments WHERE razorpay_order_id = $1",
                               order_id)


@dataclass
class Batches:
    """The service's group commit, writing down each batch's event keys."""

    pool: asyncpg.Pool
    keys: list[list[str]] = field(default_factory=list)

    def __post_init__(self):
        async def write(deliveries):
            self.keys.append([d.key for d in deliveries])
            return await apply_deliveries(self.pool, deliveries)

        self.coalescer = group_commit(write)

    async def deliver(self, key: str, payload: dict, correlation_id: str | None = None):
        delivery = parse_delivery(json.dumps(payload).encode(), key.removeprefix("id:"),
                                  correlation_id)
        return await apply_delivery(self.pool, self.coalescer, delivery)

    async def deliver_all(self, deliveries, correlation=None) -> list:
        return list(await asyncio.gather(*(
            self.deliver(key, payload, correlation and f"{correlation}-{n}")
            for n, (key, payload) in enumerate(deliveries)), return_exceptions=True))

    def shared_with_others(self, key: str) -> bool:
        return any(key in batch and len(batch) > 1 for batch in self.keys)


@pytest.fixture
async def batches(pool):
    batches = Batches(pool)
    yield batches
    await batches.coalescer.close()


async def test_a_capture_applies_once_and_its_twin_is_a_duplicate(pool, batches):
    _, order_id = await open_order(pool)
    key = f"id:evt_{order_id}"
    payload = captured(order_id, "pay_" + order_id)
    assert await batches.deliver(key, payload) == "applied"
    assert await batches.deliver(key, payload) == "duplicate"
    assert batches.keys == [[key], [key]]  # alone: a batch of one
    assert await recorded(pool, key) == "applied"
    assert await events(pool, order_id) == ["payment.captured"]


async def test_a_redelivery_that_would_now_apply_is_still_a_duplicate(pool, batches):
    """The first delivery found no order (recorded as such); its key comes again once the
    order exists, together with others: a duplicate, nothing applied."""
    booking = await make_booking(pool, 150_000)
    order_id = f"order_W{booking['booking_id']:013d}"
    key = f"id:evt_{order_id}"
    payload = captured(order_id, "pay_" + order_id)
    assert await batches.deliver(key, payload) == "unknown_order"
    await open_order(pool, booking)
    fresh = [(await open_order(pool))[1] for _ in range(5)]
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in fresh]
    deliveries.append((key, payload))
    assert await batches.deliver_all(deliveries) == ["applied"] * 5 + ["duplicate"]
    assert batches.shared_with_others(key)
    assert await recorded(pool, key) == "unknown_order"  # the first answer stands
    assert await status_of(pool, order_id) == "created"
    assert await events(pool, order_id) == []
    for order in fresh:
        assert await events(pool, order) == ["payment.captured"]


async def test_racing_twins_apply_once(pool, batches):
    _, order_id = await open_order(pool)
    key = f"id:evt_{order_id}"
    payload = captured(order_id, "pay_" + order_id)
    results = await batches.deliver_all([(key, payload)] * 8)
    assert sorted(results) == ["applied"] + ["duplicate"] * 7
    assert await events(pool, order_id) == ["payment.captured"]


async def test_captures_in_flight_together_share_transactions_and_each_applies_once(
        pool, batches):
    orders = [(await open_order(pool))[1] for _ in range(30)]
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in orders]
    assert await batches.deliver_all(deliveries, "req") == ["applied"] * 30
    assert sum(map(len, batches.keys)) == 30 and len(batches.keys) < 30  # shared
    rows = await pool.fetch(
        "SELECT p.razorpay_order_id, p.status, p.razorpay_payment_id, p.captured_at,"
        " w.outcome, w.razorpay_payment_id AS delivered_payment, w.payload->>'event' AS event"
        " FROM payments p JOIN webhook_events w ON w.razorpay_order_id = p.razorpay_order_id"
        " WHERE p.razorpay_order_id = ANY($1)", orders)
    assert sorted(r["razorpay_order_id"] for r in rows) == sorted(orders)
    for row in rows:
        order = row["razorpay_order_id"]
        assert (row["status"], row["razorpay_payment_id"], row["outcome"],
                row["delivered_payment"], row["event"]) == (
            "captured", "pay_" + order, "applied", "pay_" + order, "payment.captured")
        assert row["captured_at"] is not None
    outbox = await pool.fetch(
        "SELECT o.body->'data'->>'order_id' AS order_id, o.body->>'correlation_id' AS corr,"
        " (o.body->'data'->>'booking_id')::bigint AS booking_id, p.booking_id AS expected"
        " FROM outbox o JOIN payments p ON p.razorpay_order_id = o.body->'data'->>'order_id'"
        " WHERE o.routing_key = 'payment.captured' AND p.razorpay_order_id = ANY($1)", orders)
    assert sorted(r["order_id"] for r in outbox) == sorted(orders)  # one event each
    assert all(r["booking_id"] == r["expected"] for r in outbox)
    assert sorted(r["corr"] for r in outbox) == sorted(f"req-{n}" for n in range(30))


async def test_each_delivery_in_a_batch_gets_its_own_outcome(pool, batches):
    _, done = await open_order(pool)
    assert await batches.deliver(f"id:evt_{done}", captured(done, "pay_" + done)) == "applied"
    fresh = [(await open_order(pool))[1] for _ in range(6)]
    _, short = await open_order(pool)
    short_payload = captured(short, "pay_" + short)
    short_payload["payload"]["payment"]["entity"]["amount"] = 100
    _, late = await open_order(pool)
    await batches.deliver(f"id:evt_{late}", captured(late, "pay_" + late))
    no_entity = captured(late, "pay_" + late)
    del no_entity["payload"]["payment"]
    deliveries = [
        *[(f"id:evt_{o}", captured(o, "pay_" + o)) for o in fresh],
        (f"id:evt_{fresh[0]}", captured(fresh[0], "pay_" + fresh[0])),  # a twin
        (f"id:evt_{done}", captured(done, "pay_" + done)),  # applied before
        ("id:evt_nowhere", captured("order_nowhere", "pay_nowhere")),
        (f"id:evt_{short}", short_payload),
        ("id:evt_late_fail", captured(late, "pay_other", "payment.failed")),
        ("id:evt_other", captured(late, "pay_" + late, "invoice.paid")),  # not ours to act on
        ("id:evt_unusable", no_entity),
    ]
    results = await batches.deliver_all(deliveries)
    assert results == ["applied"] * 6 + [
        "duplicate", "duplicate", "unknown_order", "amount_mismatch", "stale",
        "ignored_event", "unusable_payload"]
    assert batches.shared_with_others("id:evt_nowhere")
    assert batches.shared_with_others(f"id:evt_{short}")
    statuses = dict(await pool.fetch(
        "SELECT razorpay_order_id, status FROM payments WHERE razorpay_order_id = ANY($1)",
        [*fresh, done, short]))
    assert statuses == {**{o: "captured" for o in [*fresh, done]}, short: "created"}
    for order in [*fresh, done, late]:
        assert await events(pool, order) == ["payment.captured"]
    assert await events(pool, short) == []
    for key, outcome in [
            (f"id:evt_{short}", "amount_mismatch"), ("id:evt_nowhere", "unknown_order"),
            ("id:evt_late_fail", "stale"), ("id:evt_other", "ignored_event"),
            ("id:evt_unusable", "unusable_payload")]:
        assert await recorded(pool, key) == outcome


async def test_a_batch_moves_each_payment_to_the_status_its_event_names(pool, batches):
    """Authorized, failed and captured in one batch: each through the state machine."""
    [a, f, c] = [(await open_order(pool))[1] for _ in range(3)]
    failed = captured(f, "pay_" + f, "payment.failed")
    failed["payload"]["payment"]["entity"].update(
        error_code="BAD_REQUEST_ERROR", error_description="Card declined")
    deliveries = [(f"id:evt_{a}", captured(a, "pay_" + a, "payment.authorized")),
                  (f"id:evt_{f}", failed), (f"id:evt_{c}", captured(c, "pay_" + c))]
    assert await batches.deliver_all(deliveries) == ["applied"] * 3
    assert [await status_of(pool, o) for o in (a, f, c)] == ["authorized", "failed", "captured"]
    assert await pool.fetchval("SELECT failure_reason FROM payments"
                               " WHERE razorpay_order_id = $1", f) == "Card declined"
    assert (await events(pool, a), await events(pool, f), await events(pool, c)) == (
        [], ["payment.failed"], ["payment.captured"])


async def test_a_second_capture_for_a_paid_booking_is_a_conflict_in_its_batch(pool, batches):
    """The unique index would refuse it: the statement sees that and records a conflict,
    and its batch-mates apply in the same transaction."""
    booking, first = await open_order(pool)
    assert await batches.deliver(f"id:evt_{first}", captured(first, "pay_" + first)) == (
        "applied")
    _, second = await open_order(pool, booking, suffix="B")  # a retry the customer paid too
    others = [(await open_order(pool))[1] for _ in range(6)]
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in others]
    deliveries.insert(3, (f"id:evt_{second}", captured(second, "pay_" + second)))
    results = await batches.deliver_all(deliveries)
    assert results == ["applied"] * 3 + ["conflict"] + ["applied"] * 3
    assert batches.shared_with_others(f"id:evt_{second}")
    assert await recorded(pool, f"id:evt_{second}") == "conflict"
    assert await status_of(pool, second) == "failed"
    assert await events(pool, second) == []
    for order in [first, *others]:
        assert await events(pool, order) == ["payment.captured"]


async def test_a_payment_captured_on_another_order_is_a_conflict(pool, batches):
    _, first = await open_order(pool)
    _, second = await open_order(pool)
    shared = "pay_shared_" + first
    assert await batches.deliver("id:1" + first, captured(first, shared)) == "applied"
    assert await batches.deliver("id:2" + first, captured(second, shared)) == "conflict"
    assert await status_of(pool, second) == "created"


async def test_a_capture_for_a_booking_cancelled_meanwhile_is_refunded_from_a_batch(
        pool, batches):
    booking, order = await open_order(pool)
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       booking["booking_id"])
    others = [(await open_order(pool))[1] for _ in range(4)]
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in [*others, order]]
    assert await batches.deliver_all(deliveries) == ["applied"] * 5
    assert batches.shared_with_others(f"id:evt_{order}")
    refunds = await pool.fetch("SELECT cause, amount_paise FROM refunds WHERE booking_id = $1",
                               booking["booking_id"])
    assert [tuple(r) for r in refunds] == [("captured_after_cancellation", 150_000)]


async def test_a_capture_for_a_cancelled_booking_whose_dispute_came_first_is_recorded(
        pool, batches, caplog):
    """The dispute forbids the refund (the trigger), yet the capture is recorded, not
    refused on every redelivery: the dispute can then be linked and answered."""
    booking, order = await open_order(pool)
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       booking["booking_id"])
    await pool.execute(
        "INSERT INTO disputes (razorpay_dispute_id, razorpay_payment_id, amount_paise, status,"
        " razorpay_updated_at) VALUES ($1, $2, 150000, 'open', now())",
        "disp_" + order, "pay_" + order)
    assert await batches.deliver(f"id:evt_{order}", captured(order, "pay_" + order)) == (
        "applied")
    assert await status_of(pool, order) == "captured"
    assert await events(pool, order) == ["payment.captured"]
    assert await pool.fetchval("SELECT count(*) FROM refunds WHERE booking_id = $1",
                               booking["booking_id"]) == 0
    assert any(getattr(r, "ctx", {}).get("alarm") == "cancelled_capture_disputed"
               for r in caplog.records)


async def test_a_webhook_capture_and_a_verified_one_leave_the_same_payment_row(
        pool, batches):
    """One transition text for every source: the rows differ only in ids and times."""
    _, verified = await open_order(pool)
    _, delivered = await open_order(pool)
    async with pool.acquire() as conn, conn.transaction():
        assert (await record_outcome(conn, PaymentOutcome(
            verified, "pay_v" + verified, PaymentStatus.CAPTURED, 150_000), "verify",
            None)).applied
    assert await batches.deliver("id:d" + delivered, captured(delivered, "pay_d" + delivered)
                                 ) == "applied"
    rows = await pool.fetch("SELECT * FROM payments WHERE razorpay_order_id = ANY($1)"
                            " ORDER BY razorpay_order_id = $2", [verified, delivered], verified)
    ignore = {"id", "booking_id", "customer_id", "razorpay_order_id", "receipt",
              "razorpay_payment_id", "created_at", "updated_at", "captured_at"}
    a, b = ({k: v for k, v in dict(r).items() if k not in ignore} for r in rows)
    assert a == b


async def test_a_delivery_the_database_refuses_fails_alone_not_its_batch(pool, batches):
    """A payload PostgreSQL cannot store (a number past numeric's range: jsonb refuses it)
    fails the batch it is in; its batch-mates then apply alone, and only it fails, as it
    does alone."""
    fresh = [(await open_order(pool))[1] for _ in range(5)]
    _, poisoned = await open_order(pool)
    bad = captured(poisoned, "pay_" + poisoned)
    bad["payload"]["payment"]["entity"]["fee_share"] = float("inf")  # sent as Infinity
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in fresh]
    deliveries.insert(3, (f"id:evt_{poisoned}", bad))
    results = await batches.deliver_all(deliveries)
    assert batches.shared_with_others(f"id:evt_{poisoned}")
    assert isinstance(results[3], asyncpg.DataError)
    assert results[:3] + results[4:] == ["applied"] * 5
    assert await status_of(pool, poisoned) == "created"


async def test_a_nul_in_text_a_customer_wrote_is_stored_not_refused_forever(pool, batches):
    """Notes and descriptions come from the customer's Checkout: a NUL there (which
    PostgreSQL cannot store) must not turn the delivery into a 5xx Razorpay retries until it
    gives up on the endpoint."""
    _, order = await open_order(pool)
    delivery = captured(order, "pay_" + order)
    delivery["payload"]["payment"]["entity"]["description"] = "nul \x00 here"
    delivery["payload"]["payment"]["entity"]["notes"] = {"k\x00": "v\x00"}
    assert await batches.deliver(f"id:evt_{order}", delivery) == "applied"
    assert await status_of(pool, order) == "captured"
    stored = await pool.fetchval("SELECT payload->'payload'->'payment'->'entity'"
                                 " FROM webhook_events WHERE event_key = $1", f"id:evt_{order}")
    entity = stored  # the pool decodes jsonb
    assert entity["description"] == "nul \ufffd here"
    assert entity["notes"] == {"k\ufffd": "v\ufffd"}


async def test_a_lone_surrogate_in_text_a_customer_wrote_is_stored_not_refused_forever(
        pool, batches):
    _, order = await open_order(pool)
    delivery = captured(order, "pay_" + order)
    delivery["payload"]["payment"]["entity"]["notes"] = {"n\ud83d": "x \udc00 \U0001f697"}
    assert await batches.deliver(f"id:evt_{order}", delivery) == "applied"
    assert await status_of(pool, order) == "captured"
    entity = await pool.fetchval("SELECT payload->'payload'->'payment'->'entity'"
                                 " FROM webhook_events WHERE event_key = $1", f"id:evt_{order}")
    assert entity["notes"] == {"n\ufffd": "x \ufffd \U0001f697"}


async def test_the_database_away_reaches_every_delivery_of_the_batch(pool):
    async def away(deliveries):
        raise ConnectionRefusedError("database away")

    coalescer = group_commit(away)
    _, order = await open_order(pool)
    deliveries = [parse_delivery(json.dumps(captured(order, f"pay_{n}")).encode(),
                                 f"evt_away_{n}", None) for n in range(4)]
    results = await asyncio.gather(*(apply_delivery(pool, coalescer, d) for d in deliveries),
                                   return_exceptions=True)
    assert all(isinstance(r, ConnectionRefusedError) for r in results)
    assert await status_of(pool, order) == "created"
    await coalescer.close()


async def test_the_database_holds_only_the_outcomes_the_code_knows(pool):
    insert = ("INSERT INTO webhook_events (event_key, event_type, outcome, payload)"
              " VALUES ($1, 'x', $2, '{}')")
    for outcome in WebhookOutcome:
        await pool.execute(insert, f"outcome-check:{outcome}", outcome)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(insert, "outcome-check:other", "applied_maybe")


async def test_a_second_capture_that_waited_for_the_first_on_its_order_is_refunded(
        pool, batches):
    """Payment B's delivery reaches the order while payment A's capture of it is still
    uncommitted: B waits for A, then finds the order captured by A. B is a second charge
    (a conflict, its duplicate and full refund written), not a stale report."""
    booking, order = await open_order(pool)
    first, second = "pay_A" + order, "pay_B" + order
    async with pool.acquire() as conn:
        async with conn.transaction():
            assert (await record_outcome(conn, PaymentOutcome(
                order, first, PaymentStatus.CAPTURED, 150_000), "verify", None)).applied
            late = asyncio.create_task(batches.deliver(f"id:evt_B{order}",
                                                       captured(order, second)))

            async def waits_on_a_lock():
                return await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'")

            await eventually(waits_on_a_lock)
            assert not late.done()
    assert await late == "conflict"
    assert await status_of(pool, order) == "captured"
    assert await pool.fetchval("SELECT razorpay_payment_id FROM payments"
                               " WHERE razorpay_order_id = $1", order) == first
    assert [tuple(r) for r in await pool.fetch(
        "SELECT razorpay_payment_id, amount_paise, found_by FROM duplicate_payments"
        " WHERE booking_id = $1", booking["booking_id"])] == [(second, 150_000, "webhook")]
    assert [tuple(r) for r in await pool.fetch(
        "SELECT cause, razorpay_payment_id, amount_paise, status FROM refunds"
        " WHERE booking_id = $1", booking["booking_id"])] == [
        ("duplicate_payment", second, 150_000, "requested")]
    assert await events(pool, order) == ["payment.captured"]
