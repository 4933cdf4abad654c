"""The closed sets (schemas.kinds): Lago's strings, one registry each, every member served."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggregation.units import Period, units_for
from billing.charge_models import PRICING_FUNCTIONS, ChargeUsage, compute_amount
from billing.validation import VALIDATORS, validate_charge_properties
from schemas import exact_json
from schemas.catalog import CatalogValidationError, parse_billable_metric, parse_plan
from schemas.kinds import AggregationType, ChargeModel

#: Properties every model accepts, for the round trip parse -> validate -> price.
VALID_PROPERTIES: dict[ChargeModel, dict[str, object]] = {
    ChargeModel.STANDARD: {"amount": "1"},
    ChargeModel.PACKAGE: {"amount": "1", "package_size": 10, "free_units": 0},
    ChargeModel.GRADUATED: {"graduated_ranges": [
        {"from_value": 0, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]},
    ChargeModel.GRADUATED_PERCENTAGE: {"graduated_percentage_ranges": [
        {"from_value": 0, "to_value": None, "rate": "1", "flat_amount": "0"}]},
    ChargeModel.VOLUME: {"volume_ranges": [
        {"from_value": 0, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]},
    ChargeModel.PERCENTAGE: {"rate": "1"},
    ChargeModel.DYNAMIC: {},
}


def test_the_public_strings_are_lagos():
    assert [m.value for m in AggregationType] == [
        "count_agg", "sum_agg", "max_agg", "latest_agg", "unique_count_agg", "weighted_sum_agg",
    ]
    assert [m.value for m in ChargeModel] == [
        "standard", "graduated", "volume", "package", "percentage", "graduated_percentage",
        "dynamic",
    ]


def test_a_member_is_its_string():
    assert AggregationType.SUM == "sum_agg"
    assert {"sum_agg": 1}[AggregationType.SUM] == 1
    assert {ChargeModel.VOLUME: 1}["volume"] == 1
    assert str(ChargeModel.GRADUATED_PERCENTAGE) == "graduated_percentage"
    assert f"{AggregationType.WEIGHTED_SUM}" == "weighted_sum_agg"
    assert exact_json.dumps({"charge_model": ChargeModel.PACKAGE}) == b'{"charge_model":"package"}'


def test_every_charge_model_has_one_pricing_function_and_one_validator():
    assert set(PRICING_FUNCTIONS) == set(ChargeModel)
    assert set(VALIDATORS) == set(ChargeModel)
    assert set(VALID_PROPERTIES) == set(ChargeModel)


@pytest.mark.parametrize("model", list(ChargeModel))
def test_every_charge_model_parses_validates_and_prices(model):
    plan = parse_plan(
        {"code": "p", "interval": "monthly", "amount_currency": "EUR", "charges": [
            {"billable_metric_code": "m", "charge_model": model.value,
             "properties": VALID_PROPERTIES[model]}]},
        "org",
    )
    charge = plan.charges[0]
    assert charge.charge_model is model
    assert validate_charge_properties(charge.charge_model, charge.properties, "EUR") == {}
    usage = ChargeUsage(units=Decimal(5), events_count=1, event_values=(Decimal(5),),
                        precise_total_amount_cents=Decimal(0), currency="EUR",
                        aggregation_type=AggregationType.SUM)
    assert compute_amount(charge.charge_model, charge.properties, usage) >= 0


def test_plain_strings_still_price_and_validate():
    usage = ChargeUsage(units=Decimal(3), events_count=1)
    assert compute_amount("standard", {"amount": "2"}, usage) == Decimal(6)
    assert validate_charge_properties("standard", {"amount": "2"}) == {}
    assert validate_charge_properties("tiered", {}) == {"charge_model": ["value_is_invalid"]}


@pytest.mark.parametrize("agg", list(AggregationType))
def test_every_aggregation_type_parses_and_has_units(agg):
    metric = parse_billable_metric(
        {"code": "m", "aggregation_type": agg.value, "field_name": "v"}, "org"
    )
    assert metric.aggregation_type is agg
    units = units_for(agg, recurring=False, window=None, before=None, unique_present=None,
                      period=Period(0, 86_400_000, 1))
    assert units == 0


def test_a_string_that_names_no_member_is_value_is_invalid():
    with pytest.raises(CatalogValidationError) as raised:
        parse_billable_metric({"code": "m", "aggregation_type": "avg_agg"}, "org")
    # as before the enum: the field is still required for a type other than count_agg
    assert raised.value.details == {
        "aggregation_type": ["value_is_invalid"], "field_name": ["value_is_mandatory"],
    }
