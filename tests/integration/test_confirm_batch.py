"""payment.captured events in hand together confirm in one statement (the notifier's group
commit, notifier/consumer.py), against the real PostgreSQL: each event gets the outcome it
gets alone, every effect happens once, and a failed batch is nobody else's failure."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from notifier.consumer import pool_apply
from notifier.handlers import BookingNotFound, UnbackedCapture, confirm_bookings
from shared.coalesce import Coalescer, group_commit
from testkit.factories import make_booking
from tests.support.notifier_events import captured, recorded_capture, rewrap, state
from tests.support.pass_tokens import expected_passes

SECRET = "itg-secret"


@dataclass
class Record:
    batches: list[int] = field(default_factory=list)  # each batch's size
    confirmed_together: list[int] = field(default_factory=list)  # bookings a batch confirmed


def recording_confirms(pool) -> tuple[Coalescer, Record]:
    record = Record()

    async def fetch(captures):
        record.batches.append(len(captures))
        async with pool.acquire() as conn:
            rows = await confirm_bookings(conn, captures, pass_secret=SECRET,
                                          mail_after=timedelta(0))
        if len(captures) > 1:
            record.confirmed_together += [event.booking_id for (event, _), row
                                          in zip(captures, rows, strict=True)
                                          if row["confirmed"]]
        return rows

    return group_commit(fetch), record


@pytest.fixture
def settings(base_settings):
    return base_settings.model_copy(update={"pass_signing_secret": SECRET})


async def apply_all(apply, envelopes) -> list:
    return list(await asyncio.gather(*(apply(e.event(), e.id) for e in envelopes),
                                     return_exceptions=True))


async def test_captures_in_hand_together_confirm_together_each_with_its_own_effects(
        pool, settings):
    confirms, record = recording_confirms(pool)
    apply = pool_apply(pool, settings, confirms)
    bookings = [await make_booking(pool) for _ in range(20)]
    envelopes = [await recorded_capture(pool, b) for b in bookings]
    assert await apply_all(apply, envelopes) == [True] * 20
    assert sum(record.batches) == 20 and len(record.batches) < 20
    assert len(record.confirmed_together) >= 18  # all but the first two, sent at once
    for booking in bookings:
        now = await state(pool, booking["booking_id"])
        assert now["status"] == "confirmed"
        expected = expected_passes(booking["booking_id"], SECRET)
        assert {p["kind"]: p["token"] for p in now["passes"]} == {
            kind: token for kind, (token, _) in expected.items()}
        [note] = now["notifications"]
        assert (note["kind"], note["details"]) == (
            "payment_confirmed", {"amount_paise": booking["amount_paise"]})
    # Redelivered, alone or together: duplicates, nothing more.
    assert await apply_all(apply, envelopes[:5]) == [False] * 5
    assert len((await state(pool, bookings[0]["booking_id"]))["passes"]) == 2
    await confirms.close()


async def test_each_event_in_a_batch_gets_the_outcome_it_gets_alone(pool, settings):
    confirms, record = recording_confirms(pool)
    apply = pool_apply(pool, settings, confirms)
    fresh = [await make_booking(pool) for _ in range(4)]
    fresh_events = [await recorded_capture(pool, b) for b in fresh]
    cancelled = await make_booking(pool)
    await pool.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1",
                       cancelled["booking_id"])
    forged = captured(await make_booking(pool))  # no captured payment recorded
    unknown = captured({"booking_id": 10**15, "customer_id": 1, "amount_paise": 100})
    envelopes = [*fresh_events, fresh_events[2], rewrap(fresh_events[3]),
                 await recorded_capture(pool, cancelled), forged, unknown]
    results = await apply_all(apply, envelopes)
    assert results[:4] == [True] * 4
    assert results[4] is False  # the same event id again: a duplicate
    assert results[5] is True  # the same fact under another id: its own inbox row, no effect
    assert results[6] is True  # applied; a cancelled booking gets nothing
    assert isinstance(results[7], UnbackedCapture) and isinstance(results[8], BookingNotFound)
    assert any(size > 1 for size in record.batches)
    for booking in fresh:
        now = await state(pool, booking["booking_id"])
        assert now["status"] == "confirmed"
        assert len(now["passes"]) == 2 and len(now["notifications"]) == 1
    now = await state(pool, cancelled["booking_id"])
    assert now["status"] == "cancelled" and not now["passes"] and not now["notifications"]
    assert not await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1)",
                                   [forged.id, unknown.id])  # refused: nothing left behind
    await confirms.close()


async def test_a_batch_that_fails_sends_its_events_alone(pool, settings):
    """Not the database being away: each event runs alone, so only the one at fault fails
    (here a batch-mate the statement cannot take: an amount too large for bigint)."""
    confirms, record = recording_confirms(pool)
    apply = pool_apply(pool, settings, confirms)
    bookings = [await make_booking(pool) for _ in range(5)]
    envelopes = [await recorded_capture(pool, b) for b in bookings]
    poisoned = captured(await make_booking(pool))
    poisoned.data["amount_paise"] = 2**70
    results = await apply_all(apply, [*envelopes[:3], poisoned, *envelopes[3:]])
    assert results[:3] + results[4:] == [True] * 5
    assert isinstance(results[3], Exception) and not isinstance(results[3], UnbackedCapture)
    assert any(size > 1 for size in record.batches)
    for booking in bookings:
        assert (await state(pool, booking["booking_id"]))["status"] == "confirmed"
    await confirms.close()


async def test_the_database_away_fails_the_batch_for_every_event(pool, settings):
    """A transient failure is every event's answer (the consumer retries each): none of
    them goes on alone into the same outage."""
    calls = []

    async def away(captures):
        calls.append(len(captures))
        raise ConnectionRefusedError("database away")

    confirms = group_commit(away)
    apply = pool_apply(pool, settings, confirms)
    bookings = [await make_booking(pool) for _ in range(4)]
    envelopes = [await recorded_capture(pool, b) for b in bookings]
    results = await apply_all(apply, envelopes)
    assert all(isinstance(r, ConnectionRefusedError) for r in results)
    assert sum(calls) == 4  # each event once: none went on alone after its batch failed
    for booking in bookings:
        assert (await state(pool, booking["booking_id"]))["status"] == "pending"
    await confirms.close()
