import itertools

import pytest

from shared.payment_state import (
    PaymentStatus,
    allowed_sources,
    can_transition,
    public_status,
)

S = PaymentStatus

# The full table, written out by hand: the code must agree with it on every pair.
EXPECTED = {
    (S.CREATED, S.FAILED): True,
    (S.CREATED, S.AUTHORIZED): True,
    (S.CREATED, S.CAPTURED): True,
    (S.FAILED, S.AUTHORIZED): True,  # late authorisation
    (S.FAILED, S.CAPTURED): True,
    (S.AUTHORIZED, S.CAPTURED): True,
}


@pytest.mark.parametrize("current,target", list(itertools.product(S, S)))
def test_every_transition_pair(current, target):
    assert can_transition(current, target) is EXPECTED.get((current, target), False)


def test_captured_is_the_only_terminal_status():
    assert [s for s in S if not any(can_transition(s, t) for t in S)] == [S.CAPTURED]


def test_captured_never_goes_back_and_failed_never_overwrites_progress():
    assert not any(can_transition(S.CAPTURED, t) for t in S)
    assert not can_transition(S.AUTHORIZED, S.FAILED)
    assert not can_transition(S.CAPTURED, S.FAILED)


def test_allowed_sources_is_what_the_sql_matches():
    assert allowed_sources(S.CAPTURED) == [S.CREATED, S.FAILED, S.AUTHORIZED]
    assert allowed_sources(S.FAILED) == [S.CREATED]
    assert allowed_sources(S.CREATED) == []


@pytest.mark.parametrize(
    "status,public",
    [(S.CREATED, "pending"), (S.AUTHORIZED, "pending"), (S.FAILED, "failed"), (S.CAPTURED, "paid")],
)
def test_public_status_uses_the_seed_vocabulary(status, public):
    assert public_status(status) == public


def test_a_full_refund_is_refunded_and_a_partial_one_stays_paid():
    assert public_status(S.CAPTURED, fully_refunded=True) == "refunded"
    assert public_status(S.CAPTURED, fully_refunded=False) == "paid"
    assert public_status(S.CREATED, fully_refunded=True) == "pending"
