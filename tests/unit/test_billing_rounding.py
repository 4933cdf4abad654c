from decimal import Decimal as D

import pytest

from billing.rounding import round_units


@pytest.mark.parametrize(
    ("value", "function", "precision", "expected"),
    [
        (D("1.5"), "round", 0, D("2")),  # half-up
        (D("2.5"), "round", 0, D("3")),  # half-up, not banker's (would be 2)
        (D("-2.5"), "round", 0, D("-3")),  # half away from zero, like Ruby's round
        (D("1.2345"), "round", 2, D("1.23")),
        (D("1.235"), "round", 2, D("1.24")),
        (D("1.231"), "ceil", 2, D("1.24")),
        (D("1.239"), "floor", 2, D("1.23")),
        (D("-1.5"), "ceil", 0, D("-1")),  # ceil goes toward +infinity
        (D("-1.5"), "floor", 0, D("-2")),
        (D("1234.5"), "round", -2, D("1200")),  # 12.345 hundreds -> 12 hundreds
        (D("1250"), "round", -2, D("1300")),  # 12.5 hundreds -> 13 (half-up)
        (D("1201"), "ceil", -2, D("1300")),
        (D("1299"), "floor", -2, D("1200")),
        (D("7.9"), "floor", None, D("7")),  # precision None -> 0 decimals
        (D("1.23456"), None, 2, D("1.23456")),  # no function -> unchanged
    ],
)
def test_round_units(value, function, precision, expected):
    result = round_units(value, function, precision)
    assert result == expected


def test_negative_precision_prints_as_plain_integer():
    assert str(round_units(D("1234.5"), "round", -2)) == "1200"


def test_round_units_keeps_38_digits():
    value = D("12345678901234567890123456.123456789012")  # Decimal(38,12)
    assert round_units(value, "round", 11) == D("12345678901234567890123456.12345678901")


def test_unknown_function_raises():
    with pytest.raises(ValueError):
        round_units(D("1"), "truncate", 0)
