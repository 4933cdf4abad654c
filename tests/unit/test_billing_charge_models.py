"""Charge models of SPEC §6; every expected amount is worked out by hand in the comment."""

from decimal import Decimal as D

import pytest

from billing.charge_models import PRICING_FUNCTIONS, ChargeUsage, compute_amount


def usage(units, events_count=1, **kwargs) -> ChargeUsage:
    return ChargeUsage(units=D(str(units)), events_count=events_count, **kwargs)


def test_registry_has_every_model():
    assert set(PRICING_FUNCTIONS) == {
        "standard",
        "package",
        "graduated",
        "graduated_percentage",
        "volume",
        "percentage",
        "dynamic",
    }


def test_unknown_model_raises():
    with pytest.raises(ValueError):
        compute_amount("tiered", {}, usage(1))


# --- standard ------------------------------------------------------------------------------


def test_standard_string_amount():
    # 10.5 units x 0.2 = 2.1
    assert compute_amount("standard", {"amount": "0.2"}, usage("10.5")) == D("2.1")


def test_standard_numeric_amount():
    # 4 units x 3 = 12; 0.1 as a float is read as "0.1": 3 x 0.1 = 0.3 exactly
    assert compute_amount("standard", {"amount": 3}, usage(4)) == D("12")
    assert compute_amount("standard", {"amount": 0.1}, usage(3)) == D("0.3")


def test_standard_zero_units():
    assert compute_amount("standard", {"amount": "5"}, usage(0, 0)) == 0


def test_standard_returns_decimal():
    assert isinstance(compute_amount("standard", {"amount": "1"}, usage(1)), D)


# --- package -------------------------------------------------------------------------------

PACKAGE = {"amount": "5", "package_size": 100, "free_units": 50}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", "0"),  # max(0 - 50, 0) = 0 -> 0 packages
        ("50", "0"),  # exactly the free units -> 0 packages
        ("51", "5"),  # 1 unit billed -> ceil(1/100) = 1 package x 5
        ("150", "5"),  # 100 billed -> exactly 1 package
        ("151", "10"),  # 101 billed -> ceil(1.01) = 2 packages x 5
        ("349.5", "15"),  # 299.5 billed -> ceil(2.995) = 3 packages x 5
    ],
)
def test_package_with_free_units_and_partial_packages(units, expected):
    assert compute_amount("package", PACKAGE, usage(units)) == D(expected)


def test_package_without_free_units():
    # 1 unit -> ceil(1/10) = 1 package x 2.5
    props = {"amount": "2.5", "package_size": 10, "free_units": 0}
    assert compute_amount("package", props, usage(1)) == D("2.5")


def test_package_negative_units_cost_nothing():
    # max(-20 - 0, 0) = 0
    props = {"amount": "2.5", "package_size": 10, "free_units": 0}
    assert compute_amount("package", props, usage(-20)) == 0


# --- graduated -----------------------------------------------------------------------------

INTEGER_STYLE = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "1", "flat_amount": "10"},
        {"from_value": 101, "to_value": 200, "per_unit_amount": "0.5", "flat_amount": "5"},
        {"from_value": 201, "to_value": None, "per_unit_amount": "0.1", "flat_amount": "0"},
    ]
}
ADJACENT_STYLE = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 10, "per_unit_amount": "2", "flat_amount": "1"},
        {"from_value": 10, "to_value": 20, "per_unit_amount": "1", "flat_amount": "0"},
        {"from_value": 20, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "3"},
    ]
}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        # 0 units: first tier entered, 0 x 1 + flat 10 = 10
        ("0", "10"),
        # boundary at to_value: tier 1 (from 0) min(100,100)=100 -> 100 x 1 + 10 = 110, stop
        ("100", "110"),
        # two tiers: 110 + (150 - 101 + 1 = 50) x 0.5 + 5 = 110 + 30 = 140
        ("150", "140"),
        # boundary of tier 2: 110 + (200 - 101 + 1 = 100) x 0.5 + 5 = 110 + 55 = 165
        ("200", "165"),
        # three tiers: 110 + 55 + (250 - 201 + 1 = 50) x 0.1 + 0 = 170
        ("250", "170"),
        # fractional between tiers: 110 + (100.5 - 101 + 1 = 0.5) x 0.5 + 5 = 115.25
        ("100.5", "115.25"),
    ],
)
def test_graduated_integer_style(units, expected):
    assert compute_amount("graduated", INTEGER_STYLE, usage(units)) == D(expected)


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        # 0 units: 0 x 2 + flat 1 = 1
        ("0", "1"),
        # boundary: 10 x 2 + 1 = 21, stop (10 <= to 10)
        ("10", "21"),
        # two tiers: 21 + (15 - 10 = 5) x 1 + 0 = 26
        ("15", "26"),
        # boundary of tier 2: 21 + (20 - 10 = 10) x 1 = 31
        ("20", "31"),
        # three tiers: 21 + 10 + (25 - 20 = 5) x 0.5 + 3 = 36.5
        ("25", "36.5"),
    ],
)
def test_graduated_adjacent_style(units, expected):
    assert compute_amount("graduated", ADJACENT_STYLE, usage(units)) == D(expected)


def test_graduated_first_tier_from_zero_counts_all_units_up_to_to():
    # from_value 0 -> min(units, to): 7 x 3 + 0 = 21 (not 7 - 0 + 1 = 8 units)
    props = {
        "graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "3", "flat_amount": "0"},
            {"from_value": 11, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"},
        ]
    }
    assert compute_amount("graduated", props, usage(7)) == D("21")


def test_graduated_single_open_range():
    # 42 x 0.25 + 2 = 12.5
    props = {
        "graduated_ranges": [
            {"from_value": 0, "to_value": None, "per_unit_amount": "0.25", "flat_amount": "2"}
        ]
    }
    assert compute_amount("graduated", props, usage(42)) == D("12.5")


# --- graduated_percentage ------------------------------------------------------------------

GRAD_PCT = {
    "graduated_percentage_ranges": [
        {"from_value": 0, "to_value": 100, "rate": "1", "flat_amount": "2"},
        {"from_value": 101, "to_value": None, "rate": "0.5", "flat_amount": "0"},
    ]
}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", "2"),  # 0 x 1% + flat 2
        ("100", "3"),  # 100 x 1% + 2 = 3
        ("300", "4"),  # 3 + (300 - 101 + 1 = 200) x 0.5% + 0 = 3 + 1 = 4
    ],
)
def test_graduated_percentage_integer_style(units, expected):
    assert compute_amount("graduated_percentage", GRAD_PCT, usage(units)) == D(expected)


def test_graduated_percentage_adjacent_style_counts_tier_units_integer_style_like_lago():
    # Lago's amount_details/range_graduated_percentage_service.rb#units has no adjacent model:
    # a tier not starting at 0 bills units - from + 1 whatever the bounds' style.
    # 1000 x 2% = 20; (1500 - 1000 + 1 = 501) x 1% + 1 = 6.01; total 26.01
    props = {
        "graduated_percentage_ranges": [
            {"from_value": 0, "to_value": 1000, "rate": "2", "flat_amount": "0"},
            {"from_value": 1000, "to_value": None, "rate": "1", "flat_amount": "1"},
        ]
    }
    assert compute_amount("graduated_percentage", props, usage(1500)) == D("26.01")


# --- volume --------------------------------------------------------------------------------

VOLUME = {
    "volume_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "2", "flat_amount": "10"},
        {"from_value": 101, "to_value": 200, "per_unit_amount": "1", "flat_amount": "5"},
        {"from_value": 201, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
    ]
}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0.3", "10.6"),  # ceil 1 -> range 1: 0.3 x 2 + 10
        ("100", "210"),  # boundary: 100 <= 100 -> range 1: 100 x 2 + 10
        ("100.5", "105.5"),  # ceil 101 and 100.5 > 100 -> range 2: 100.5 x 1 + 5
        ("200", "205"),  # range 2: 200 x 1 + 5
        ("250", "125"),  # range 3: 250 x 0.5 + 0 (all units at one price)
    ],
)
def test_volume(units, expected):
    assert compute_amount("volume", VOLUME, usage(units)) == D(expected)


def test_volume_zero_units_pays_the_first_range_flat_amount_like_lago():
    # Lago #5760, app/services/charge_models/volume_service.rb: 0 units selects the first range;
    # spec/services/charge_models/volume_service_spec.rb "when aggregation is 0": 0 x 2 + 10 = 10
    assert compute_amount("volume", VOLUME, usage(0, 0)) == D("10")


def test_volume_adjacent_ranges_with_fractional_units():
    props = {
        "volume_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
            {"from_value": 10, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "2"},
        ]
    }
    # 10 units -> range 1 (10 <= 10): 10 x 1 = 10
    assert compute_amount("volume", props, usage(10)) == D("10")
    # 10.5 units: ceil 11, 10.5 > 10 -> range 2: 10.5 x 0.5 + 2 = 7.25
    assert compute_amount("volume", props, usage("10.5")) == D("7.25")


def test_volume_ranges_are_matched_by_from_value_order():
    # Same ranges in reverse order: 150 units -> range 2: 150 x 1 + 5 = 155
    props = {"volume_ranges": list(reversed(VOLUME["volume_ranges"]))}
    assert compute_amount("volume", props, usage(150)) == D("155")


# --- dynamic -------------------------------------------------------------------------------


def test_dynamic_usd():
    # 12345 cents / 100 = 123.45 USD
    u = usage(3, 3, precise_total_amount_cents=D("12345"), currency="USD")
    assert compute_amount("dynamic", {}, u) == D("123.45")


def test_dynamic_usd_fractional_cents():
    # 1234.5678 cents / 100 = 12.345678 USD (rounded later, by amount_cents)
    u = usage(1, 1, precise_total_amount_cents=D("1234.5678"), currency="USD")
    assert compute_amount("dynamic", {}, u) == D("12.345678")


def test_dynamic_jpy():
    # JPY subunit is 1: 12345 / 1 = 12345 yen
    u = usage(3, 3, precise_total_amount_cents=D("12345"), currency="JPY")
    assert compute_amount("dynamic", {}, u) == D("12345")


def test_dynamic_without_amounts_is_zero():
    assert compute_amount("dynamic", {}, usage(0, 0)) == 0
