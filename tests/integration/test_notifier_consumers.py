"""Several notifier processes on one queue: a burst with redeliveries and the same facts
under new event ids is applied once per effect, whichever consumer gets each message."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from testkit import infra
from testkit.factories import make_booking
from testkit.infra import eventually
from tests.support.notifier import Bus, Notifier
from tests.support.notifier_events import recorded_capture, rewrap

BOOKINGS = 30


async def test_two_consumers_apply_every_effect_once(base_settings, pool):
    settings = base_settings.model_copy(update={
        "amqp_exchange": infra.unique_name("a6pay.events.twoconsumers"),
        "notifier_prefetch": 8,
    })
    bookings = [await make_booking(pool) for _ in range(BOOKINGS)]
    envelopes = []
    for booking in bookings:
        envelope = await recorded_capture(pool, booking)  # the capture on record
        envelopes += [envelope, envelope, rewrap(envelope)]  # a redelivery, a second report
    random.Random(7).shuffle(envelopes)
    consumers = [await Notifier(settings).start(), await Notifier(settings).start()]
    try:
        async with Bus(settings) as bus:
            await asyncio.gather(*(bus.publish(envelope) for envelope in envelopes))

        async def all_settled():
            return sum(len(c.outcomes) for c in consumers) >= len(envelopes)

        await eventually(all_settled, timeout=90)
    finally:
        for consumer in consumers:
            await consumer.stop()

    assert all(consumer.outcomes for consumer in consumers), "one consumer got nothing"
    outcomes = Counter(outcome for c in consumers for outcome, _ in c.outcomes)
    assert outcomes == {"applied": 2 * BOOKINGS, "duplicate": BOOKINGS}
    ids = [booking["booking_id"] for booking in bookings]
    per_booking = await pool.fetch(
        "SELECT b.id, b.status,"
        " (SELECT count(*) FROM passes p WHERE p.booking_id = b.id) AS passes,"
        " (SELECT count(*) FROM notifications n WHERE n.booking_id = b.id) AS notes"
        " FROM bookings b WHERE b.id = ANY($1)", ids)
    assert {(r["status"], r["passes"], r["notes"]) for r in per_booking} == {("confirmed", 2, 1)}
    assert await pool.fetchval(
        "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])",
        list({envelope.id for envelope in envelopes})) == 2 * BOOKINGS
