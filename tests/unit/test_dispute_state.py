"""The dispute state machine: every pair walked, the open ones, the events' targets."""

from __future__ import annotations

import itertools

import pytest

from shared.dispute_state import (
    EVENT_TARGET,
    OPEN_STATUSES,
    DisputeStatus,
    allowed_sources,
    can_respond,
    can_transition,
    is_terminal,
)

S = DisputeStatus
ALLOWED = {
    (S.OPEN, S.ACTION_REQUIRED), (S.OPEN, S.UNDER_REVIEW),
    (S.ACTION_REQUIRED, S.UNDER_REVIEW), (S.UNDER_REVIEW, S.ACTION_REQUIRED),
    *((s, t) for s in (S.OPEN, S.ACTION_REQUIRED, S.UNDER_REVIEW)
      for t in (S.WON, S.LOST, S.CLOSED)),
}


@pytest.mark.parametrize(("start", "target"), list(itertools.product(S, S)))
def test_every_pair(start, target):
    assert can_transition(start, target) is ((start, target) in ALLOWED)


def test_decided_is_final_and_open_is_everything_else():
    assert {s for s in S if is_terminal(s)} == {S.WON, S.LOST, S.CLOSED}
    assert set(OPEN_STATUSES) == {"open", "action_required", "under_review"}
    assert {s for s in S if can_respond(s)} == {S.OPEN, S.ACTION_REQUIRED}


def test_nothing_goes_back_to_open_and_a_created_event_moves_nothing():
    assert allowed_sources(S.OPEN) == []
    assert allowed_sources(S.WON) == [S.OPEN, S.ACTION_REQUIRED, S.UNDER_REVIEW]


def test_all_six_events_have_a_target():
    assert set(EVENT_TARGET) == {f"payment.dispute.{n}" for n in (
        "created", "under_review", "action_required", "won", "lost", "closed")}
