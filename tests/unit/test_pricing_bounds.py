"""Issue 16, finding 6: extreme but valid-looking catalogs made the usage API answer 503.

A charge amount of 1e20 priced a fee whose amount_cents (10**22) the JSON encoder (orjson, in
faust's ``View.json``: 64-bit integers only) refused; a rounding_precision of +-10**9 made
``Decimal.quantize`` raise in billing.rounding. The web layer (api.errors) turned both into a
503. Now catalog inputs are bounded at validation, and pricing cannot raise nor produce what
JSON cannot carry, for any catalog and any usage the store can hold.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation.units import FeeUsage
from aggregation.usage_aggregate import UsageAggregate
from billing.currency import MAX_AMOUNT_CENTS
from billing.customer_usage import customer_usage
from billing.validation import validate_charge_properties as validate
from schemas.bounds import MAX_ABS_DECIMAL
from schemas.catalog import (
    CatalogValidationError,
    parse_billable_metric,
    parse_customer,
    parse_plan,
    parse_subscription,
)
from services.catalog import CatalogService
from services.usage import UsageService
from sinks.memory_store import MemoryStore
from tests.unit import catalog_factory as cf

MAX_USD = "92233720368547758.07"  # (2**63 - 1) cents


class UsageStoreDouble:
    """The store reads UsageService makes for a non-recurring sum_agg charge."""

    def __init__(self, aggregates: list[UsageAggregate]) -> None:
        self.aggregates = aggregates

    def read_usage(self, org, subscription_id, from_ms, to_ms):
        return self.aggregates if from_ms > 0 else []

    def read_event_values(self, org, subscription_id, from_ms, to_ms):
        return {}


def _usage_doc(metric_body: dict, charge_props: dict, value_sum: str,
               stored_precision: int | None = None) -> dict:
    metric = parse_billable_metric({"code": "api", "aggregation_type": "sum_agg",
                                    "field_name": "amount", **metric_body}, cf.ORG)
    if stored_precision is not None:  # stored before the bound existed: not re-validated here
        metric = replace(metric, rounding_precision=stored_precision)
    charge = {**cf.charge(), "properties": charge_props}
    index = cf.index(metrics=[metric], plans=[cf.plan(charge)])
    store = UsageStoreDouble([UsageAggregate("ch_1", "", (), "sum_agg", 1, D(value_sum), None,
                                             None, D(0))])
    service = UsageService(store, lambda: index,  # type: ignore[arg-type]
                           clock=lambda: datetime(2025, 3, 10, tzinfo=UTC))
    return service.usage(cf.ORG, cf.SUB)


def test_a_1e20_amount_no_longer_breaks_the_usage_answer():
    """Before: amount_cents 10**22 -> orjson "Integer exceeds 64-bit range" -> 503. A fee never
    carries more than Lago's fees.amount_cents bigint, 2**63 - 1 (even for a catalog stored
    before the amount bound existed: this one bypasses validation)."""
    doc = _usage_doc({}, {"amount": "1e20"}, "1")
    orjson.dumps(doc)
    assert doc["amount_cents"] == MAX_AMOUNT_CENTS
    assert doc["charges_usage"][0]["amount_cents"] == MAX_AMOUNT_CENTS


@pytest.mark.parametrize("precision", [10**9, -(10**9)])
@pytest.mark.parametrize("function", ["round", "ceil", "floor"])
def test_a_huge_rounding_precision_no_longer_raises(precision, function):
    """Before: billing.rounding's quantize at 10**-1000000000 or 10**1000000000 raised
    InvalidOperation (too many digits / exponent beyond the context's range). Validation now
    refuses them; a stored one is clamped to ROUNDING_PRECISION_RANGE."""
    body = {"rounding_function": function, "rounding_precision": 0}
    doc_zero = _usage_doc(body, {"amount": "1"}, "2.5")
    doc = _usage_doc(body, {"amount": "1"}, "2.5", stored_precision=precision)
    orjson.dumps(doc)
    units = D(doc["charges_usage"][0]["units"])
    if precision > 0:
        assert units == D("2.5")  # more decimals than the value has: unchanged
    else:
        assert units in (0, D(10) ** 26) and D(doc_zero["charges_usage"][0]["units"]) != units


# --- validation: Lago's codes ----------------------------------------------------------------


@pytest.mark.parametrize("precision", [-27, 21, 10**9, -(10**9), "1000000000"])
def test_rounding_precision_out_of_range_is_refused(precision):
    """Lago has no bound but its integer column; ours is documented ([-26, 20]) and answered
    with Lago's numericality code, value_is_out_of_range."""
    with pytest.raises(CatalogValidationError) as err:
        parse_billable_metric({"code": "m", "aggregation_type": "count_agg",
                               "rounding_function": "round", "rounding_precision": precision},
                              "o")
    assert err.value.details == {"rounding_precision": ["value_is_out_of_range"]}


@pytest.mark.parametrize("precision", [-26, -2, 0, 12, 20])
def test_rounding_precision_in_range_is_accepted(precision):
    metric = parse_billable_metric({"code": "m", "aggregation_type": "count_agg",
                                    "rounding_function": "ceil",
                                    "rounding_precision": precision}, "o")
    assert metric.rounding_precision == precision


@pytest.mark.parametrize(("amount", "currency", "ok"), [
    (MAX_USD, "USD", True),
    ("92233720368547758.08", "USD", False),
    ("1e20", "USD", False),
    (1e20, "EUR", False),
    ("9223372036854775807", "JPY", True),  # no decimals: 2**63 - 1 yen
    ("9223372036854775808", "JPY", False),
    ("922337203685477.5807", None, True),  # no currency: the 4-decimal currencies' bound
    ("922337203685477.5808", None, False),
])
def test_amounts_are_bounded_by_what_a_fee_can_carry(amount, currency, ok):
    """Lago's fees.amount_cents is a bigint (db/structure.sql); Lago's DecimalAmountService has
    no upper bound, so an amount it would accept and then fail to store is refused here with
    the code Lago gives an amount it refuses: invalid_amount."""
    expected = {} if ok else {"amount": ["invalid_amount"]}
    assert validate("standard", {"amount": amount}, currency) == expected


def test_every_money_field_rate_and_unit_bound_is_checked():
    big = "1e20"
    assert validate("percentage", {"rate": "1e30", "fixed_amount": big,
                                   "free_units_per_total_aggregation": "1e26",
                                   "per_transaction_min_amount": big,
                                   "per_transaction_max_amount": big}, "USD") == {
        "rate": ["invalid_rate"],
        "fixed_amount": ["invalid_fixed_amount"],
        "free_units_per_total_aggregation": ["invalid_free_units_per_total_aggregation"],
        "per_transaction_min_amount": ["invalid_amount"],
        "per_transaction_max_amount": ["invalid_amount"],
    }
    # a rate is a price per 100 units: 100 x the largest amount is still accepted
    assert validate("percentage", {"rate": "9223372036854775807"}, "USD") == {}
    ranges = [{"from_value": 0, "to_value": "1e26", "per_unit_amount": big, "flat_amount": "1"},
              {"from_value": "1e26", "to_value": None, "per_unit_amount": "1",
               "flat_amount": "1"}]
    assert validate("graduated", {"graduated_ranges": ranges}, "USD") == {
        "per_unit_amount": ["invalid_amount"], "graduated_ranges": ["invalid_graduated_ranges"],
    }
    assert validate("package", {"amount": "1", "package_size": 10**26, "free_units": 10**26}) == {
        "package_size": ["invalid_package_size"], "free_units": ["invalid_free_units"],
    }


def _plan_service_errors(plan_body: dict) -> dict:
    service = CatalogService(MemoryStore(), clock=lambda: datetime.now(UTC))  # type: ignore[arg-type]
    service.apply("o", "billable_metric",
                  {"code": "api", "aggregation_type": "sum_agg", "field_name": "a"})
    with pytest.raises(CatalogValidationError) as err:
        service.apply("o", "plan", {"code": "p", "interval": "monthly", **plan_body})
    return err.value.details


def test_plans_are_checked_in_their_currency():
    """The plan's currency sets the bound (JPY has no decimals); an unknown currency cannot be
    priced: Lago's plan validates amount_currency inclusion -> value_is_invalid."""
    charge = {"billable_metric_code": "api", "charge_model": "standard",
              "properties": {"amount": MAX_USD}}
    assert _plan_service_errors({"amount_currency": "XTS", "charges": [charge]}) == {
        "amount_currency": ["value_is_invalid"], "amount": ["invalid_amount"],
    }
    too_much = {**charge, "properties": {"amount": "92233720368547758.08"}}
    assert _plan_service_errors({"amount_currency": "USD", "charges": [too_much]}) == {
        "amount": ["invalid_amount"],
    }


@pytest.mark.parametrize(("body", "field"), [
    ({"amount_cents": 2**63}, "amount_cents"),
    ({"amount_cents": str(-(2**63) - 1)}, "amount_cents"),
    ({"charges": [{"billable_metric_code": "api", "charge_model": "standard",
                   "properties": {"amount": "1"}, "min_amount_cents": str(2**63)}]},
     "min_amount_cents"),
])
def test_cents_fields_are_bigints_like_lago(body, field):
    """Lago's plans.amount_cents and charges.min_amount_cents are bigint columns."""
    with pytest.raises(CatalogValidationError) as err:
        parse_plan({"code": "p", "interval": "monthly", "amount_currency": "EUR", **body}, "o")
    assert err.value.details == {field: ["value_is_out_of_range"]}


# --- any accepted catalog prices any storable usage --------------------------------------------

storable = st.decimals(min_value=-MAX_ABS_DECIMAL + 1, max_value=MAX_ABS_DECIMAL - 1, places=12,
                       allow_nan=False, allow_infinity=False)
amount_st = st.decimals(min_value=0, max_value=D(MAX_USD), places=2,
                        allow_nan=False, allow_infinity=False)
precision_st = st.integers(-26, 20)
unit_bound_st = st.decimals(min_value=1, max_value=MAX_ABS_DECIMAL - 1, places=12,
                            allow_nan=False, allow_infinity=False)


def _charges(amount, bound, rate):
    a = str(amount)
    ranges = [{"from_value": 0, "to_value": str(bound), "per_unit_amount": a, "flat_amount": a},
              {"from_value": str(bound), "to_value": None, "per_unit_amount": a,
               "flat_amount": a}]
    pct_ranges = [{"from_value": 0, "to_value": str(bound), "rate": str(rate), "flat_amount": a},
                  {"from_value": str(bound), "to_value": None, "rate": str(rate),
                   "flat_amount": a}]
    return [
        ("standard", {"amount": a}),
        ("package", {"amount": a, "package_size": 1, "free_units": 0}),
        ("graduated", {"graduated_ranges": ranges}),
        ("volume", {"volume_ranges": ranges}),
        ("graduated_percentage", {"graduated_percentage_ranges": pct_ranges}),
        ("percentage", {"rate": str(rate), "fixed_amount": a,
                        "free_units_per_total_aggregation": str(bound),
                        "per_transaction_max_amount": a}),
        ("percentage", {"rate": str(rate), "fixed_amount": a, "free_units_per_events": 1}),
        ("dynamic", {}),
    ]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(units=storable, amount=amount_st, precision=precision_st, bound=unit_bound_st,
       rate=st.decimals(min_value=0, max_value=D(MAX_USD) * 100, places=4, allow_nan=False,
                        allow_infinity=False),
       function=st.sampled_from(["round", "ceil", "floor"]))
def test_any_accepted_catalog_prices_any_storable_usage(units, amount, precision, bound, rate,
                                                        function):
    charges = []
    for model, props in _charges(amount, bound, rate):
        assert validate(model, props, "USD") == {}, (model, props)
        charges.append({"billable_metric_code": "m", "charge_model": model,
                        "properties": props})
    metric = parse_billable_metric({"code": "m", "aggregation_type": "sum_agg", "field_name": "v",
                                    "rounding_function": function,
                                    "rounding_precision": precision}, "o")
    plan = parse_plan({"code": "p", "interval": "monthly", "amount_currency": "USD",
                       "charges": charges}, "o")
    sub = parse_subscription({"external_id": "s", "external_customer_id": "c", "plan_code": "p",
                              "started_at": "2026-01-01T00:00:00Z"}, "o",
                             now=datetime(2026, 1, 2, tzinfo=UTC))
    usages = [FeeUsage(c.id, "", (), units, 3, (units, -units, units), units)
              for c in plan.charges]
    moment = datetime(2026, 1, 2, tzinfo=UTC)
    doc = customer_usage(customer=parse_customer({"external_id": "c"}, "o"), subscription=sub,
                         plan=plan, metrics={"m": metric}, usages=usages, period_from=moment,
                         period_to=moment)
    orjson.dumps(doc)
    assert 0 <= doc["amount_cents"] <= MAX_AMOUNT_CENTS
