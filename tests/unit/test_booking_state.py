import itertools

import pytest

from shared.booking_state import (
    BookingStatus,
    allowed_sources,
    can_transition,
)

S = BookingStatus

# The full table, written out by hand: the code must agree with it on every pair.
EXPECTED = {
    (S.PENDING, S.CONFIRMED): True,  # its payment was captured
    (S.PENDING, S.CANCELLED): True,
    (S.CONFIRMED, S.COLLECTED): True,  # the collection pass scanned at the counter
    (S.CONFIRMED, S.CANCELLED): True,
    (S.COLLECTED, S.RETURNED): True,  # the return pass scanned
}


@pytest.mark.parametrize("current,target", list(itertools.product(S, S)))
def test_every_transition_pair(current, target):
    assert can_transition(current, target) is EXPECTED.get((current, target), False)


def test_returned_and_cancelled_are_terminal():
    assert [s for s in S if not any(can_transition(s, t) for t in S)] == [S.RETURNED, S.CANCELLED]


def test_a_car_out_cannot_be_cancelled_and_nothing_goes_back():
    assert not can_transition(S.COLLECTED, S.CANCELLED)
    assert not can_transition(S.COLLECTED, S.CONFIRMED)
    assert not can_transition(S.RETURNED, S.COLLECTED)
    assert not can_transition(S.CONFIRMED, S.RETURNED)  # the return before the collection


def test_allowed_sources_is_what_the_sql_matches():
    assert allowed_sources(S.COLLECTED) == [S.CONFIRMED]
    assert allowed_sources(S.RETURNED) == [S.COLLECTED]
    assert allowed_sources(S.CANCELLED) == [S.PENDING, S.CONFIRMED]
    assert allowed_sources(S.PENDING) == []


def test_the_allowed_pairs_are_exactly_the_table():
    allowed = {pair for pair in itertools.product(S, S) if can_transition(*pair)}
    assert allowed == {pair for pair, ok in EXPECTED.items() if ok}
