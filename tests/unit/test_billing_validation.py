"""validate_charge_properties: Lago's error codes (app/services/charges/validators)."""

import pytest

from billing.validation import validate_charge_properties as validate


def rng(frm, to, unit="1", flat="0"):
    return {"from_value": frm, "to_value": to, "per_unit_amount": unit, "flat_amount": flat}


def pct_rng(frm, to, rate="1", flat="0"):
    return {"from_value": frm, "to_value": to, "rate": rate, "flat_amount": flat}


def test_unknown_model():
    assert validate("tiered", {}) == {"charge_model": ["value_is_invalid"]}


# --- standard / package --------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["0", "0.5", "12", 3, 0, 2.5])
def test_standard_valid(amount):
    assert validate("standard", {"amount": amount}) == {}


@pytest.mark.parametrize("amount", [None, "", "abc", "-1", -1, True, "NaN", "Infinity", [1]])
def test_standard_invalid_amount(amount):
    assert validate("standard", {"amount": amount}) == {"amount": ["invalid_amount"]}


def test_standard_missing_amount():
    assert validate("standard", {}) == {"amount": ["invalid_amount"]}


def test_package_valid():
    assert validate("package", {"amount": "5", "package_size": 100, "free_units": 0}) == {}


def test_package_invalid_fields():
    props = {"amount": "-5", "package_size": 0, "free_units": -1}
    assert validate("package", props) == {
        "amount": ["invalid_amount"],
        "package_size": ["invalid_package_size"],
        "free_units": ["invalid_free_units"],
    }


@pytest.mark.parametrize("size", [None, "10", 1.5, True, -3])
def test_package_size_must_be_positive_integer(size):
    props = {"amount": "5", "package_size": size, "free_units": 0}
    assert validate("package", props) == {"package_size": ["invalid_package_size"]}


def test_package_free_units_required_like_lago():
    assert validate("package", {"amount": "5", "package_size": 10}) == {
        "free_units": ["invalid_free_units"]
    }


# --- ranges --------------------------------------------------------------------------------

# Lago's app/services/validators/range_bounds_validator.rb, one range at a time: from_value is
# the previous to_value or the previous to_value + 1 (0 before the first range).
VALID_RANGES = {
    "integer": [rng(0, 100), rng(101, 200), rng(201, None)],
    "adjacent": [rng(0, 100), rng(100, 200), rng(200, None)],
    "single": [rng(0, None)],
    "fractional": [rng(0, "0.5"), rng("0.5", None)],
    # styles may mix (graduated_service_spec.rb "when first tier flat amount is zero")
    "mixed_adjacency": [rng(0, 10), rng(10, 20), rng(21, None)],
    # the first range may start at 0 + 1
    "from_one": [rng(1, 100), rng(101, None)],
}

BAD_RANGES = {
    "gap": [rng(0, 100), rng(150, None)],
    "overlap": [rng(0, 100), rng(50, None)],
    "not_from_zero_or_one": [rng(2, 100), rng(101, None)],
    "from_negative": [rng(-1, 100), rng(101, None)],  # validators specs: "does not starts at 0"
    "null_to_not_last": [rng(0, None), rng(101, None)],
    "last_not_open": [rng(0, 100), rng(101, 200)],
    "from_not_below_to": [rng(0, 0), rng(1, None)],
    "non_numeric_bound": [rng(0, "ten"), rng(11, None)],
    "decimal_gap": [rng(0, "0.1"), rng("0.5", None)],  # graduated validator spec
}


@pytest.mark.parametrize("ranges", VALID_RANGES.values(), ids=VALID_RANGES.keys())
@pytest.mark.parametrize("model", ["graduated", "volume"])
def test_valid_ranges(model, ranges):
    assert validate(model, {f"{model}_ranges": ranges}) == {}


@pytest.mark.parametrize("ranges", BAD_RANGES.values(), ids=BAD_RANGES.keys())
@pytest.mark.parametrize("model", ["graduated", "volume"])
def test_bad_ranges(model, ranges):
    key = f"{model}_ranges"
    assert validate(model, {key: ranges}) == {key: [f"invalid_{key}"]}


@pytest.mark.parametrize("ranges", BAD_RANGES.values(), ids=BAD_RANGES.keys())
def test_bad_graduated_percentage_ranges(ranges):
    key = "graduated_percentage_ranges"
    pct = [pct_rng(r["from_value"], r["to_value"]) for r in ranges]
    assert validate("graduated_percentage", {key: pct}) == {key: [f"invalid_{key}"]}


@pytest.mark.parametrize("ranges", [None, [], "x"])
@pytest.mark.parametrize("model", ["graduated", "volume"])
def test_missing_ranges(model, ranges):
    key = f"{model}_ranges"
    assert validate(model, {key: ranges}) == {key: [f"missing_{key}"]}


def test_ranges_that_are_not_objects():
    assert validate("graduated", {"graduated_ranges": [1, 2]}) == {
        "graduated_ranges": ["invalid_graduated_ranges"]
    }


def test_range_amounts_use_lago_fields():
    ranges = [rng(0, 10, unit="-1"), rng(11, None, flat="x")]
    assert validate("graduated", {"graduated_ranges": ranges}) == {
        "per_unit_amount": ["invalid_amount"],
        "flat_amount": ["invalid_amount"],
    }
    assert validate("volume", {"volume_ranges": ranges}) == {
        "per_unit_amount": ["invalid_amount"],
        "flat_amount": ["invalid_amount"],
    }


def test_graduated_percentage_valid_and_rate_errors():
    key = "graduated_percentage_ranges"
    assert validate("graduated_percentage", {key: [pct_rng(0, 10), pct_rng(11, None)]}) == {}
    bad = [pct_rng(0, 10, rate="-2"), pct_rng(11, None, flat=None)]
    assert validate("graduated_percentage", {key: bad}) == {
        "rate": ["invalid_rate"],
        "flat_amount": ["invalid_amount"],
    }
    assert validate("graduated_percentage", {}) == {key: [f"missing_{key}"]}


# --- percentage / dynamic ------------------------------------------------------------------


def test_percentage_valid():
    props = {
        "rate": "2.5",
        "fixed_amount": "0.5",
        "free_units_per_events": 3,
        "free_units_per_total_aggregation": "100",
        "per_transaction_min_amount": "1",
        "per_transaction_max_amount": "10",
    }
    assert validate("percentage", props) == {}
    assert validate("percentage", {"rate": "0"}) == {}


def test_percentage_invalid_fields():
    props = {
        "rate": "-1",
        "fixed_amount": "abc",
        "free_units_per_events": 0,
        "free_units_per_total_aggregation": "-5",
        "per_transaction_min_amount": "x",
        "per_transaction_max_amount": "-1",
    }
    assert validate("percentage", props) == {
        "rate": ["invalid_rate"],
        "fixed_amount": ["invalid_fixed_amount"],
        "free_units_per_events": ["invalid_free_units_per_events"],
        "free_units_per_total_aggregation": ["invalid_free_units_per_total_aggregation"],
        "per_transaction_min_amount": ["invalid_amount"],
        "per_transaction_max_amount": ["invalid_amount"],
    }


def test_percentage_rate_required():
    assert validate("percentage", {}) == {"rate": ["invalid_rate"]}


@pytest.mark.parametrize("value", ["3", 1.5, True, -1])
def test_percentage_free_units_per_events_must_be_positive_integer(value):
    assert validate("percentage", {"rate": "1", "free_units_per_events": value}) == {
        "free_units_per_events": ["invalid_free_units_per_events"]
    }


def test_percentage_max_lower_than_min():
    props = {"rate": "1", "per_transaction_min_amount": "5", "per_transaction_max_amount": "2"}
    assert validate("percentage", props) == {
        "per_transaction_max_amount": ["per_transaction_max_lower_than_per_transaction_min"]
    }


def test_dynamic_takes_no_properties():
    assert validate("dynamic", {}) == {}
