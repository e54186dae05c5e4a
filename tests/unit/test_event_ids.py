"""Event ids are version-7 UUIDs: unique, and later ids sort later (to the millisecond), so
the outbox's and the inboxes' primary keys grow at their right edge."""

from __future__ import annotations

import time
import uuid

from shared.events import Envelope, OrderCreated, time_ordered_uuid


def test_an_event_id_is_a_version_7_uuid_of_now():
    before = time.time_ns() // 1_000_000
    made = time_ordered_uuid()
    after = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after  # its first 48 bits are the Unix milliseconds


def test_ids_made_later_sort_later_and_never_repeat():
    earlier = [time_ordered_uuid() for _ in range(1000)]
    time.sleep(0.002)
    later = time_ordered_uuid()
    assert len(set(earlier)) == len(earlier)
    assert later > max(earlier)
    assert str(later) > max(map(str, earlier))  # as PostgreSQL's uuid order sees them too


def test_envelopes_get_time_ordered_ids():
    event = OrderCreated(booking_id=1, customer_id=1, order_id="order_x", amount_paise=100)
    assert Envelope.wrap(event, "test").id.version == 7
