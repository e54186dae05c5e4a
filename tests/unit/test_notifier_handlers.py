"""Handler wiring and wording, without a database (the SQL is covered in
tests/integration/test_notifier.py, which calls the same handlers on a real connection)."""

from datetime import date

from notifier import handlers
from shared.events import EVENT_TYPES
from shared.messaging import CONSUMERS


def test_every_event_type_has_exactly_one_handler():
    assert set(handlers.HANDLERS) == set(EVENT_TYPES.values())


def test_the_notifier_queue_is_bound_to_every_type_it_handles():
    assert sorted(CONSUMERS["notifier"]) == sorted(t.routing_key for t in handlers.HANDLERS)


def test_amounts_and_dates_read_naturally():
    assert handlers._rupees(150_000) == "₹1,500.00"
    assert handlers._rupees(1) == "₹0.01"
    booking = {"start_date": date(2025, 12, 28), "end_date": date(2026, 1, 2)}
    assert handlers._dates(booking) == "28 Dec 2025 to 02 Jan 2026"
