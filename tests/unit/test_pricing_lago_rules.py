"""Issue 16, finding 10: pricing follows Lago's current services (getlago/lago-api).

Each test names the Lago file it follows and, where there is one, the spec example whose
numbers it reuses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from aggregation.units import FeeUsage
from billing.charge_models import ChargeUsage, compute_amount
from billing.customer_usage import customer_usage
from billing.validation import validate_charge_properties
from schemas.catalog import parse_billable_metric, parse_customer, parse_plan, parse_subscription

ORG = "org"
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def usage(units, events_count=1, **kwargs) -> ChargeUsage:
    return ChargeUsage(units=D(str(units)), events_count=events_count, **kwargs)


def rng(frm, to, unit, flat):
    return {"from_value": frm, "to_value": to, "per_unit_amount": unit, "flat_amount": flat}


def pct(frm, to, rate, flat):
    return {"from_value": frm, "to_value": to, "rate": rate, "flat_amount": flat}


# --- (a) volume at 0 units ------------------------------------------------------------------

# spec/services/charge_models/volume_service_spec.rb
VOLUME_SPEC = {"volume_ranges": [
    rng(0, 100, "2", "10"), rng(101, 200, "1", "0"), rng(201, None, "0.5", "50"),
]}


@pytest.mark.parametrize(("units", "amount"), [
    ("0", "10"),  # "when aggregation is 0": applies the flat amount from the first tier
    ("1", "12"),  # "when aggregation is 1"
    ("100", "210"),  # "the limit of the first range"
    ("100.5", "100.5"),  # "in the between of first and second range": ceil 101 -> range 2
    ("101", "101"),  # "the lower limit of the second range"
])
def test_volume_follows_lago_volume_service_spec(units, amount):
    """Lago #5760, app/services/charge_models/volume_service.rb (compute_amount =
    per_unit_total_amount + flat_unit_amount of matching_range, also at 0 units)."""
    assert compute_amount("volume", VOLUME_SPEC, usage(units)) == D(amount)


def test_volume_zero_units_with_a_free_first_range_costs_nothing():
    """volume_service_spec.rb "when first tier flat amount is zero": 0-1 at 0/0 -> 0."""
    props = {"volume_ranges": [
        rng(0, 1, "0", "0"), rng(2, 100, "2", "10"), rng(101, None, "0.5", "50"),
    ]}
    assert compute_amount("volume", props, usage(0, 0)) == 0


def test_volume_units_lago_cannot_place_still_price():
    """Where Lago's matching_range is nil (its volume_service.rb then fails), e.g. units below a
    first range starting at 1 or in the gap after a decimal to_value, the first range whose
    to_value holds the units prices them: no error."""
    from_one = {"volume_ranges": [rng(1, 10, "1", "5"), rng(11, None, "0.5", "0")]}
    assert compute_amount("volume", from_one, usage(0, 0)) == D("5")  # 0 x 1 + 5
    gap = {"volume_ranges": [rng(0, "0.5", "1", "0"), rng("1.5", None, "2", "0")]}
    assert validate_charge_properties("volume", gap) == {}
    assert compute_amount("volume", gap, usage("0.7")) == D("1.4")  # range 2: 0.7 x 2


# --- (b) range bounds, one range at a time, and tier units with mixed styles -----------------

# graduated_service_spec.rb "when first tier flat amount is zero"
MIXED = [rng(0, "0.01", "0", "0"), rng("0.01", 10, "10", "2"), rng(11, None, "5", "3")]


@pytest.mark.parametrize("model", ["graduated", "volume"])
def test_mixed_bound_styles_are_valid_like_lago(model):
    """app/services/validators/range_bounds_validator.rb: each from_value is the previous
    to_value or the previous to_value + 1, checked one range at a time: 0-0.01, 0.01-10, 11-∞
    (graduated_service_spec.rb "when first tier flat amount is zero") is valid."""
    assert validate_charge_properties(model, {f"{model}_ranges": MIXED}) == {}
    key = "graduated_percentage_ranges"
    mixed_pct = [pct(r["from_value"], r["to_value"], "1", "0") for r in MIXED]
    assert validate_charge_properties("graduated_percentage", {key: mixed_pct}) == {}


def test_graduated_mixed_styles_zero_units_costs_the_free_first_tier():
    """graduated_service_spec.rb "when first tier flat amount is zero": amount 0."""
    assert compute_amount("graduated", {"graduated_ranges": MIXED}, usage(0, 0)) == 0


def test_graduated_mixed_styles_count_tier_units_integer_style():
    """app/services/charge_models/graduated_service.rb#adjacent_ranges? is false as soon as one
    pair is not adjacent (11 != 10), so RangeGraduatedService#units adds 1 to every tier not
    starting at 0. 12 units: 0.01 x 0 + 0; (10 - 0.01 + 1 = 10.99) x 10 + 2 = 111.9;
    (12 - 11 + 1 = 2) x 5 + 3 = 13 -> 124.9."""
    assert compute_amount("graduated", {"graduated_ranges": MIXED}, usage(12)) == D("124.9")


@pytest.mark.parametrize(("units", "amount"), [("0.05", "0.5"), ("0.5", "3.0")])
def test_graduated_decimal_adjacent_ranges(units, amount):
    """graduated_service_spec.rb "with decimal adjacent ranges": 0.05 -> 0.5;
    0.5 -> 0.1 x 10 + 0.4 x 5 = 3.0."""
    props = {"graduated_ranges": [
        rng(0, "0.1", "10", "0"), rng("0.1", 1, "5", "0"), rng(1, None, "2", "0"),
    ]}
    assert compute_amount("graduated", props, usage(units)) == D(amount)


def test_graduated_single_range_is_not_adjacent_like_lago():
    """graduated_service.rb#adjacent_ranges? returns false for fewer than 2 ranges: a single
    range from 1 (valid: 0 + 1) bills 5 - 1 + 1 = 5 units x 2 = 10."""
    props = {"graduated_ranges": [rng(1, None, "2", "0")]}
    assert validate_charge_properties("graduated", props) == {}
    assert compute_amount("graduated", props, usage(5)) == D("10")


# spec/services/charge_models/graduated_percentage_service_spec.rb
GRAD_PCT_SPEC = {"graduated_percentage_ranges": [
    pct(0, 10, "1", "200"), pct(11, 20, "2", "300"), pct(21, None, "3", "400"),
]}


@pytest.mark.parametrize(("units", "amount"), [
    ("0", "200"), ("1", "200.01"), ("10", "200.1"), ("11", "500.12"), ("12", "500.14"),
    ("21", "900.33"),
])
def test_graduated_percentage_follows_lago_spec(units, amount):
    """app/services/charge_models/graduated_percentage_service.rb with
    amount_details/range_graduated_percentage_service.rb; numbers of its spec
    (e.g. 21: 200 + 300 + 400 + 10 x 0.01 + 10 x 0.02 + 1 x 0.03 = 900.33)."""
    assert compute_amount("graduated_percentage", GRAD_PCT_SPEC, usage(units)) == D(amount)


def test_graduated_percentage_mixed_styles_zero_units_costs_nothing():
    """graduated_percentage_service_spec.rb "when first tier flat amount is zero"."""
    props = {"graduated_percentage_ranges": [
        pct(0, "0.01", "0", "0"), pct("0.01", 10, "1", "200"), pct(11, None, "2", "300"),
    ]}
    assert compute_amount("graduated_percentage", props, usage(0, 0)) == 0


# --- (e) percentage: free units as Lago's percentage_service.rb ------------------------------

# percentage_service_spec.rb: running total [50, 150, 400] of 4 events, 800 units, rate 1.3,
# fixed 2. Events 50, 100, 250, 400 give that running total for the first 3 events.
SPEC_VALUES = (D(50), D(100), D(250), D(400))


def spec_usage(units="800", values=SPEC_VALUES, count=4, agg="sum_agg"):
    return ChargeUsage(units=D(units), events_count=count, event_values=values,
                       aggregation_type=agg)


@pytest.mark.parametrize(("free_events", "free_total", "amount"), [
    (3, "250.0", "11.15"),  # "when fixed amount value is 0": 550 x 1.3% + (4 - 2) x 2
    (None, "250.0", "11.15"),  # "when free_units_per_events is nil"
    (3, None, "7.2"),  # "when free_units_per_total_aggregation is nil": 400 x 1.3% + 1 x 2
    (3, "500.0", "7.2"),  # "when free_units_per_total_aggregation > last running total"
    (None, None, "18.4"),  # "when free units are not set": 800 x 1.3% + 4 x 2
])
def test_percentage_follows_lago_spec(free_events, free_total, amount):
    """app/services/charge_models/percentage_service.rb, numbers of percentage_service_spec.rb."""
    props = {"rate": "1.3", "fixed_amount": "2.0", "free_units_per_events": free_events,
             "free_units_per_total_aggregation": free_total}
    assert compute_amount("percentage", props, spec_usage()) == D(amount)


def test_percentage_more_free_events_than_events_is_zero():
    """percentage_service_spec.rb "when free_units_count > number of events": 0."""
    props = {"rate": "1.3", "fixed_amount": "2.0", "free_units_per_events": 5}
    values = (D(50), D(100), D(250))
    assert compute_amount("percentage", props, spec_usage("400", values, 4)) == 0


def test_percentage_both_settings_take_the_per_events_running_total_first():
    """percentage_service.rb: with N set the running total is the first N events' (sum_service
    running_total_per_events), free units = min(its last, T), and free events =
    [N, running totals below T].excluding(0).min -- none below T leaves N.
    N = 2, T = 5, events 10, 20, 30, rate 10 %, fixed 1: running total [10, 30], free 5 units,
    free events [2, 0] -> 2: (60 - 5) x 10 % + (3 - 2) x 1 = 6.5 (the old "smaller allowance"
    rule gave 8.5)."""
    props = {"rate": "10", "fixed_amount": "1", "free_units_per_events": 2,
             "free_units_per_total_aggregation": "5"}
    values = (D(10), D(20), D(30))
    assert compute_amount("percentage", props, spec_usage("60", values, 3)) == D("6.5")


def test_percentage_count_metric_running_total_is_one_per_event():
    """billable_metrics/aggregations/count_service.rb running_total = (1..count), so N below
    the count frees the N-th total: N = 2, T = 1, 5 events, rate 10 %, fixed 1 -> free 2
    units and [2, 0].excluding(0).min = 2 free events: (5 - 2) x 10 % + 3 x 1 = 3.3."""
    props = {"rate": "10", "fixed_amount": "1", "free_units_per_events": 2,
             "free_units_per_total_aggregation": "1"}
    ones = (D(1),) * 5
    assert compute_amount("percentage", props, spec_usage("5", ones, 5, "count_agg")) == D("3.3")


# percentage_service_spec.rb "when applying min / max amount per transaction" (premium):
# events 10, 80, 10000; rate 2.99; min 1.75; max 12.
MIN_MAX = {"rate": "2.99", "per_transaction_min_amount": "1.75",
           "per_transaction_max_amount": "12", "fixed_amount": "0"}
MIN_MAX_VALUES = (D(10), D(80), D(10_000))


@pytest.mark.parametrize(("extra", "amount"), [
    ({}, "16.142"),  # 1.75 (min) + 2.392 + 12 (max)
    ({"fixed_amount": "2.0"}, "18.691"),  # 2.299 + 4.392 + 12
    ({"free_units_per_events": 2}, "12"),  # only 10000 pays -> max
    ({"free_units_per_total_aggregation": "30"}, "13.794"),  # (90 - 30) x 2.99 % + 12
    ({"free_units_per_events": 3, "free_units_per_total_aggregation": "10000"}, "2.691"),
])
def test_percentage_per_transaction_follows_lago_spec(extra, amount):
    """percentage_service.rb#compute_amount_with_transaction_min_max, its spec's numbers."""
    props = {**MIN_MAX, **extra}
    got = compute_amount("percentage", props, spec_usage("10090", MIN_MAX_VALUES, 3))
    assert got == D(amount)


def test_percentage_per_transaction_keeps_the_free_amount_after_the_free_events():
    """compute_amount_with_transaction_min_max: an event is free while free events *or* a free
    amount remain, so T keeps applying after N. N = 1, T = 100, events 10, 20, 30: all free
    -> 0 (the old rule, free units only within the first N events, gave 1 + 3 = 5 at min 1)."""
    props = {"rate": "10", "per_transaction_min_amount": "1", "free_units_per_events": 1,
             "free_units_per_total_aggregation": "100"}
    values = (D(10), D(20), D(30))
    assert compute_amount("percentage", props, spec_usage("60", values, 3)) == 0


# --- dynamic --------------------------------------------------------------------------------


@pytest.mark.parametrize(("units", "amount"), [("20", "0.402"), ("0", "0")])
def test_dynamic_follows_lago_spec(units, amount):
    """app/services/charge_models/dynamic_service.rb returns 0 when the units are 0;
    dynamic_service_spec.rb: 40.2 cents over 20 units -> 0.402; "when aggregation is zero" -> 0."""
    u = usage(units, 2, precise_total_amount_cents=D("40.2"), currency="USD")
    assert compute_amount("dynamic", {}, u) == D(amount)


# --- (c) and (d): fees, as Lago's Fees::ChargeService ----------------------------------------


def _catalog(charges: list[dict], metric_body: dict | None = None):
    metric = parse_billable_metric(
        metric_body or {"code": "gb", "aggregation_type": "sum_agg", "field_name": "gb"}, ORG
    )
    plan = parse_plan({"code": "p", "interval": "monthly", "amount_currency": "EUR",
                       "charges": charges}, ORG)
    sub = parse_subscription({"external_id": "s", "external_customer_id": "c", "plan_code": "p",
                              "started_at": "2026-01-01T00:00:00Z"}, ORG, now=NOW)
    customer = parse_customer({"external_id": "c"}, ORG)
    return {metric.code: metric}, plan, sub, customer


def _usage(catalog, usages):
    metrics, plan, sub, customer = catalog
    return customer_usage(customer=customer, subscription=sub, plan=plan, metrics=metrics,
                          usages=usages, period_from=NOW, period_to=NOW)


GRADUATED = {"graduated_ranges": [rng(0, 10, "1", "5"), rng(11, None, "0.5", "0")]}


def test_negative_units_give_a_zero_fee_like_lago():
    """app/services/fees/charge_service.rb#init_fee: "Prevent trying to create a fee with
    negative units or amount" -- units and amount become 0. A sum of -3 on a graduated charge
    used to show units -3 and still charge the first tier's flat 5.00."""
    catalog = _catalog([{"billable_metric_code": "gb", "charge_model": "graduated",
                         "properties": GRADUATED}])
    charge = catalog[1].charges[0]
    doc = _usage(catalog, [FeeUsage(charge.id, "", (), D(-3), 2)])
    (entry,) = doc["charges_usage"]
    assert (entry["units"], entry["amount_cents"], entry["events_count"]) == ("0", 0, 2)
    assert doc["amount_cents"] == 0


def test_negative_amount_gives_a_zero_fee_like_lago():
    """fees/charge_service.rb#init_fee: negative units with standard -> amount -6 -> both 0."""
    catalog = _catalog([{"billable_metric_code": "gb", "charge_model": "standard",
                         "properties": {"amount": "2"}}])
    charge = catalog[1].charges[0]
    (entry,) = _usage(catalog, [FeeUsage(charge.id, "", (), D(-3), 1)])["charges_usage"]
    assert (entry["units"], entry["amount_cents"]) == ("0", 0)


def test_every_filter_bucket_is_priced_even_unused():
    """fees/charge_service.rb#init_fees: one fee per declared filter, then one for the default
    bucket, each priced with its properties; an unused one at 0 units
    (hydrate_non_persistable_fees) still pays its first tier's flat fee. Only the default
    bucket saw events: 12 units -> 10 x 1 + 5 + (12 - 11 + 1) x 0.5 = 16; the unused "eu"
    filter (flat 2) -> 2; total 18.00 EUR."""
    eu = {"graduated_ranges": [rng(0, 10, "1", "2"), rng(11, None, "0.5", "0")]}
    catalog = _catalog([{"billable_metric_code": "gb", "charge_model": "graduated",
                         "properties": GRADUATED,
                         "filters": [{"lago_id": "f_eu", "values": {"region": ["eu"]},
                                      "properties": eu}]}])
    charge = catalog[1].charges[0]
    doc = _usage(catalog, [FeeUsage(charge.id, "", (), D(12), 3)])
    (entry,) = doc["charges_usage"]
    by_filter = {f["lago_charge_filter_id"]: (f["units"], f["amount_cents"])
                 for f in entry["filters"]}
    assert by_filter == {"f_eu": ("0", 200), None: ("12", 1600)}
    assert entry["amount_cents"] == 1800 and doc["amount_cents"] == 1800


def test_a_charge_without_events_prices_its_default_bucket_and_every_filter():
    """fees/charge_service.rb#init_fees with no event at all: the "eu" filter (flat 2) and the
    default bucket (flat 5) are both due: 7.00 EUR."""
    eu = {"graduated_ranges": [rng(0, None, "1", "2")]}
    catalog = _catalog([{"billable_metric_code": "gb", "charge_model": "graduated",
                         "properties": GRADUATED,
                         "filters": [{"lago_id": "f_eu", "values": {"region": ["eu"]},
                                      "properties": eu}]}])
    (entry,) = _usage(catalog, [])["charges_usage"]
    by_filter = {f["lago_charge_filter_id"]: f["amount_cents"] for f in entry["filters"]}
    assert by_filter == {"f_eu": 200, None: 500}
    assert entry["amount_cents"] == 700


def test_a_grouped_charge_without_events_has_one_null_group_fee():
    """billable_metrics/aggregations/base_service.rb#empty_results -> null_result with
    grouped_by_keys: one group whose keys are all nil, priced at 0 units (flat 5 due); the
    serializer lists it in grouped_usage (charge_usage_serializer.rb#grouped_usage)."""
    catalog = _catalog([{"billable_metric_code": "gb", "charge_model": "graduated",
                         "properties": {**GRADUATED, "pricing_group_keys": ["region", "az"]}}])
    (entry,) = _usage(catalog, [])["charges_usage"]
    assert entry["amount_cents"] == 500
    (group,) = entry["grouped_usage"]
    assert group["grouped_by"] == {"az": None, "region": None}
    assert (group["units"], group["amount_cents"]) == ("0", 500)


def test_a_grouped_bucket_with_events_has_no_null_group():
    """Only the groups seen are fees when the bucket has events (GroupedService over the
    aggregation's groups): eu 3 units -> 3 x 1 + 5 = 8.00 EUR, nothing else."""
    catalog = _catalog([{"billable_metric_code": "gb", "charge_model": "graduated",
                         "properties": {**GRADUATED, "pricing_group_keys": ["region"]}}])
    charge = catalog[1].charges[0]
    doc = _usage(catalog, [FeeUsage(charge.id, "", (("region", "eu"),), D(3), 1)])
    (entry,) = doc["charges_usage"]
    assert [g["grouped_by"] for g in entry["grouped_usage"]] == [{"region": "eu"}]
    assert entry["amount_cents"] == 800


@pytest.mark.parametrize("n", [0, 1, 2, 5])
@pytest.mark.parametrize("limit", ["0", "0.5", "1", "2", "2.5", "3", "10"])
def test_count_running_total_is_lagos_one_to_n_list(n, limit):
    """count_service.rb / unique_count_service.rb build (1..n).to_a; CountingTotal answers the
    same questions without the list (a count can be millions of events)."""
    from billing.percentage import CountingTotal, RunningTotal

    listed, counted = RunningTotal([D(i) for i in range(1, n + 1)]), CountingTotal(n)
    assert (len(counted), counted.last) == (len(listed), listed.last)
    assert counted.count_below(D(limit)) == listed.count_below(D(limit))
    assert [counted.nth(i) for i in range(1, n + 1)] == [listed.nth(i) for i in range(1, n + 1)]
