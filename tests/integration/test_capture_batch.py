"""Captures delivered together commit together (webhook_service/capture_batch.py), against
the real PostgreSQL: each delivery gets the answer it would get alone, every effect happens
once, and what a batch cannot judge goes alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from shared.coalesce import Coalescer
from testkit.factories import make_booking
from tests.integration.test_webhook_apply import captured, events, open_order, recorded
from webhook_service import capture_batch
from webhook_service.handlers import apply_webhook


@dataclass
class Record:
    batches: list[list[str]] = field(default_factory=list)  # each batch's event keys
    applied: list[str] = field(default_factory=list)  # keys a batch applied (not sent alone)


def recording_batches(pool) -> tuple[Coalescer, Record]:
    """The service's coalescer, writing down what each batch held and applied."""
    record = Record()

    async def fetch(captures):
        record.batches.append([c.key for c in captures])
        results = await capture_batch.apply_captures(pool, captures)
        record.applied += [c.key for c, r in zip(captures, results, strict=True) if r]
        return results

    return Coalescer(fetch, max_batch=capture_batch.MAX_BATCH,
                     in_flight=capture_batch.IN_FLIGHT), record


async def deliver_all(pool, coalescer, deliveries, correlation=None) -> list[str]:
    return list(await asyncio.gather(*(
        apply_webhook(pool, key, payload, correlation and f"{correlation}-{n}", coalescer)
        for n, (key, payload) in enumerate(deliveries))))


async def test_captures_in_flight_together_share_transactions_and_each_applies_once(pool):
    coalescer, record = recording_batches(pool)
    orders = [(await open_order(pool))[1] for _ in range(30)]
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in orders]
    assert await deliver_all(pool, coalescer, deliveries, "req") == ["applied"] * 30
    assert sum(map(len, record.batches)) == 30 and len(record.batches) < 30  # shared
    assert len(record.applied) >= 28  # all but the first two, sent at once, each alone
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
    await coalescer.close()


async def test_what_a_batch_does_not_move_gets_the_answer_it_gets_alone(pool):
    coalescer, record = recording_batches(pool)
    _, done = await open_order(pool)
    assert await apply_webhook(pool, f"id:evt_{done}", captured(done, "pay_" + done),
                               None) == "applied"
    fresh = [(await open_order(pool))[1] for _ in range(6)]
    _, short = await open_order(pool)
    short_payload = captured(short, "pay_" + short)
    short_payload["payload"]["payment"]["entity"]["amount"] = 100
    deliveries = [
        *[(f"id:evt_{o}", captured(o, "pay_" + o)) for o in fresh],
        (f"id:evt_{fresh[0]}", captured(fresh[0], "pay_" + fresh[0])),  # a twin
        (f"id:evt_{done}", captured(done, "pay_" + done)),  # applied before
        ("id:evt_nowhere", captured("order_nowhere", "pay_nowhere")),
        (f"id:evt_{short}", short_payload),
    ]
    results = await deliver_all(pool, coalescer, deliveries)
    assert results == ["applied"] * 6 + ["duplicate", "duplicate", "unknown_order",
                                         "amount_mismatch"]
    # Batches applied the fresh ones after the first two (sent at once, each alone).
    assert set(record.applied) == {f"id:evt_{o}" for o in fresh[2:]}
    statuses = dict(await pool.fetch(
        "SELECT razorpay_order_id, status FROM payments WHERE razorpay_order_id = ANY($1)",
        [*fresh, done, short]))
    assert statuses == {**{o: "captured" for o in [*fresh, done]}, short: "created"}
    for order in [*fresh, done]:
        assert await events(pool, order) == ["payment.captured"]
    assert await events(pool, short) == []
    assert await recorded(pool, f"id:evt_{short}") == "amount_mismatch"
    assert await recorded(pool, "id:evt_nowhere") == "unknown_order"
    await coalescer.close()


async def test_a_key_recorded_before_its_order_existed_sends_the_batch_alone(pool):
    """The first delivery found no order; its key comes again in a batch once the order
    exists: the batch would move the payment but cannot record the key, so it rolls back,
    and alone the redelivery is a duplicate that changes nothing."""
    coalescer, record = recording_batches(pool)
    booking = await make_booking(pool, 150_000)
    late = f"order_W{booking['booking_id']:013d}"
    late_key = f"id:evt_{late}"
    assert await apply_webhook(pool, late_key, captured(late, "pay_" + late),
                               None) == "unknown_order"
    await open_order(pool, booking)
    fresh = [(await open_order(pool))[1] for _ in range(5)]
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in fresh]
    deliveries.append((late_key, captured(late, "pay_" + late)))
    assert await deliver_all(pool, coalescer, deliveries) == ["applied"] * 5 + ["duplicate"]
    assert any(late_key in batch and len(batch) > 1 for batch in record.batches)
    assert late_key not in record.applied
    assert await recorded(pool, late_key) == "unknown_order"  # the first answer stands
    assert await pool.fetchval("SELECT status FROM payments WHERE razorpay_order_id = $1",
                               late) == "created"
    assert await events(pool, late) == []
    for order in fresh:
        assert await events(pool, order) == ["payment.captured"]
    await coalescer.close()


async def test_a_conflict_in_a_batch_sends_its_deliveries_alone(pool):
    """A second payment captured for a paid booking breaks a unique index: the whole batch
    rolls back, each delivery runs alone, and only the conflict is refused."""
    coalescer, record = recording_batches(pool)
    booking, first = await open_order(pool)
    assert await apply_webhook(pool, f"id:evt_{first}", captured(first, "pay_" + first),
                               None) == "applied"
    _, second = await open_order(pool, booking, suffix="B")  # a retry the customer paid too
    others = [(await open_order(pool))[1] for _ in range(6)]
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in others]
    deliveries.insert(3, (f"id:evt_{second}", captured(second, "pay_" + second)))
    results = await deliver_all(pool, coalescer, deliveries)
    assert results == ["applied"] * 3 + ["conflict"] + ["applied"] * 3
    assert any(f"id:evt_{second}" in batch and len(batch) > 1 for batch in record.batches)
    assert not {f"id:evt_{second}", *(f"id:evt_{o}" for o in others[2:])} & set(
        record.applied)  # the batch that held the conflict rolled back; all went alone
    assert await recorded(pool, f"id:evt_{second}") == "conflict"
    assert await events(pool, second) == []
    for order in [first, *others]:
        assert await events(pool, order) == ["payment.captured"]
    await coalescer.close()


async def test_a_capture_for_a_booking_cancelled_meanwhile_is_refunded_from_a_batch(pool):
    coalescer, record = recording_batches(pool)
    booking, order = await open_order(pool)
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       booking["booking_id"])
    others = [(await open_order(pool))[1] for _ in range(4)]
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in [*others, order]]
    assert await deliver_all(pool, coalescer, deliveries) == ["applied"] * 5
    assert f"id:evt_{order}" in record.applied  # in a batch, not alone
    refunds = await pool.fetch("SELECT cause, amount_paise FROM refunds WHERE booking_id = $1",
                               booking["booking_id"])
    assert [tuple(r) for r in refunds] == [("captured_after_cancellation", 150_000)]
    await coalescer.close()


async def test_a_capture_with_nobody_to_share_with_goes_alone(pool):
    """An idle service sends a capture at once, alone in its batch, and the batch hands it
    to the lone path: the same rows as without batching."""
    coalescer, record = recording_batches(pool)
    _, order = await open_order(pool)
    key = f"id:evt_{order}"
    assert await apply_webhook(pool, key, captured(order, "pay_" + order), None,
                               coalescer) == "applied"
    assert record.batches == [[key]] and record.applied == []
    assert await apply_webhook(pool, key, captured(order, "pay_" + order), None,
                               coalescer) == "duplicate"
    assert await recorded(pool, key) == "applied"
    assert await events(pool, order) == ["payment.captured"]
    await coalescer.close()


async def test_the_batch_statement_and_the_lone_one_agree_on_the_payment_row(pool):
    """The same transition, whichever statement ran it: the rows differ only in ids and
    times."""
    coalescer, record = recording_batches(pool)
    _, alone = await open_order(pool)
    _, batched = await open_order(pool)
    assert await apply_webhook(pool, "id:a" + alone, captured(alone, "pay_a" + alone),
                               None) == "applied"
    assert await apply_webhook(pool, "id:b" + batched, captured(batched, "pay_b" + batched),
                               None, coalescer) == "applied"
    rows = await pool.fetch("SELECT * FROM payments WHERE razorpay_order_id = ANY($1)"
                            " ORDER BY razorpay_order_id = $2", [alone, batched], alone)
    ignore = {"id", "booking_id", "customer_id", "razorpay_order_id", "receipt",
              "razorpay_payment_id", "created_at", "updated_at", "captured_at"}
    a, b = ({k: v for k, v in dict(r).items() if k not in ignore} for r in rows)
    assert a == b
    await coalescer.close()


async def test_a_delivery_the_database_refuses_fails_alone_not_its_batch(pool):
    """A payload PostgreSQL cannot store (a NUL in a string: jsonb refuses it) fails the
    batch it is in; its batch-mates then apply alone, and only it fails, as it does alone."""
    coalescer, record = recording_batches(pool)
    fresh = [(await open_order(pool))[1] for _ in range(5)]
    _, poisoned = await open_order(pool)
    bad = captured(poisoned, "pay_" + poisoned)
    bad["payload"]["payment"]["entity"]["description"] = "nul \x00 here"
    deliveries = [(f"id:evt_{o}", captured(o, "pay_" + o)) for o in fresh]
    deliveries.insert(3, (f"id:evt_{poisoned}", bad))
    results = await asyncio.gather(*(apply_webhook(pool, key, payload, None, coalescer)
                                     for key, payload in deliveries), return_exceptions=True)
    assert any(f"id:evt_{poisoned}" in batch and len(batch) > 1 for batch in record.batches)
    assert isinstance(results[3], asyncpg.DataError)
    assert results[:3] + results[4:] == ["applied"] * 5
    assert await pool.fetchval("SELECT status FROM payments WHERE razorpay_order_id = $1",
                               poisoned) == "created"
    await coalescer.close()
