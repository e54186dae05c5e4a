import itertools

import pytest

from shared.settlement_state import (
    SettlementStatus,
    allowed_sources,
    can_transition,
    verdict,
)
from shared.settlements import ItemColumns, settlement_from_entity, settlement_of_event

S = SettlementStatus

# The full table, written out by hand: the code must agree with it on every pair.
EXPECTED = {
    (S.PENDING, S.MATCHED): True,
    (S.PENDING, S.FLAGGED): True,
    (S.FLAGGED, S.MATCHED): True,  # the items that were missing turned up
}


@pytest.mark.parametrize("current,target", list(itertools.product(S, S)))
def test_every_transition_pair(current, target):
    assert can_transition(current, target) is EXPECTED.get((current, target), False)


def test_only_matched_is_terminal():
    assert [s for s in S if not any(can_transition(s, t) for t in S)] == [S.MATCHED]


def test_allowed_sources_is_what_the_sql_matches():
    assert allowed_sources(S.MATCHED) == [S.PENDING, S.FLAGGED]
    assert allowed_sources(S.FLAGGED) == [S.PENDING]


def test_verdict_is_to_the_paisa():
    assert verdict(0) is S.MATCHED
    assert verdict(1) is S.FLAGGED and verdict(-1) is S.FLAGGED


ITEM = {"entity_id": "pay_A", "type": "payment", "credit": 97_640, "debit": 0,
        "amount": 100_000, "fee": 2_360, "tax": 360, "created_at": 1_700_000_000,
        "settled_at": 1_700_100_000, "settlement_id": "setl_A", "settlement_utr": "UTR1",
        "order_id": "order_A", "payment_id": None, "dispute_id": None, "method": "card"}


@pytest.mark.parametrize("broken", [
    {"type": "chargeback"}, {"credit": "97640"}, {"credit": True}, {"entity_id": None},
    {"settlement_id": 7}, {"settled_at": None},
])
def test_items_we_cannot_read_never_reach_the_columns(broken):
    columns = ItemColumns()
    columns.add(ITEM)
    columns.add({**ITEM, **broken})
    columns.add("not an item")
    assert (len(columns), columns.unreadable) == (1, 2)
    assert columns.columns[0] == ["setl_A"] and columns.columns[6] == [2_360]


def test_a_settlement_is_recorded_only_when_processed_and_readable():
    entity = {"id": "setl_A", "entity": "settlement", "amount": 5_000, "status": "processed",
              "fees": 10, "tax": 2, "utr": "UTR1", "created_at": 1_700_000_000}
    settlement = settlement_from_entity(entity)
    assert (settlement.settlement_id, settlement.amount_paise, settlement.fees_paise) == (
        "setl_A", 5_000, 10)
    assert settlement_from_entity({**entity, "status": "created"}) is None
    assert settlement_from_entity({**entity, "amount": "5000"}) is None
    assert settlement_of_event({"payload": {"settlement": {"entity": entity}}}) == settlement
    assert settlement_of_event({"payload": {}}) is None
