import itertools

import pytest

from shared.refund_state import (
    RefundStatus,
    allowed_sources,
    can_transition,
    is_terminal,
)

S = RefundStatus

# The full table, written out by hand: the code must agree with it on every pair.
EXPECTED = {
    (S.REQUESTED, S.PENDING): True,
    (S.REQUESTED, S.PROCESSED): True,  # Razorpay can answer processed at once
    (S.REQUESTED, S.FAILED): True,  # Razorpay refused the refund
    (S.PENDING, S.PROCESSED): True,
    (S.PENDING, S.FAILED): True,
}


@pytest.mark.parametrize("current,target", list(itertools.product(S, S)))
def test_every_transition_pair(current, target):
    assert can_transition(current, target) is EXPECTED.get((current, target), False)


def test_processed_and_failed_are_terminal():
    assert [s for s in S if is_terminal(s)] == [S.PROCESSED, S.FAILED]


def test_nothing_goes_back():
    assert not can_transition(S.PENDING, S.REQUESTED)
    assert not can_transition(S.PROCESSED, S.FAILED)
    assert not can_transition(S.FAILED, S.PROCESSED)


def test_allowed_sources_is_what_the_sql_matches():
    assert allowed_sources(S.PENDING) == [S.REQUESTED]
    assert allowed_sources(S.PROCESSED) == [S.REQUESTED, S.PENDING]
    assert allowed_sources(S.FAILED) == [S.REQUESTED, S.PENDING]
    assert allowed_sources(S.REQUESTED) == []
