from decimal import Decimal

import pytest

from shared.money import AmountError, paise_to_rupees, rupees_to_paise


@pytest.mark.parametrize(
    "rupees,paise",
    [(1500.00, 150000), (1500, 150000), (1500.1, 150010), (0.01, 1), (19.99, 1999),
     (Decimal("12.34"), 1234), (99999999.99, 9999999999)],
)
def test_exact_conversion(rupees, paise):
    assert rupees_to_paise(rupees) == paise
    assert isinstance(rupees_to_paise(rupees), int)


@pytest.mark.parametrize(
    "bad",
    [0, -1, -0.01, 1500.001, 0.001, "1500", None, True, float("nan"), float("inf"), 1e300,
     [1500], {"a": 1}],
)
def test_refuses_what_is_not_an_exact_positive_rupee_amount(bad):
    with pytest.raises(AmountError):
        rupees_to_paise(bad)


def test_round_trip_to_json_number():
    assert paise_to_rupees(150000) == 1500.0
    assert paise_to_rupees(1999) == 19.99
