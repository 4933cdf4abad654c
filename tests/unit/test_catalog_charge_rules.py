"""Charges are checked against their billable metric, as Lago does (issue 16, finding 10).

Every rule, field and code is Lago's current one (getlago/lago-api at 1b1c24a6): the
validations of ``app/models/charge.rb``, the percentage validators
``app/services/charges/validators/{percentage,graduated_percentage}_service.rb`` and
``app/models/charge_filter_value.rb``. Lago's spec for each is ``spec/models/charge_spec.rb``
(and ``spec/models/charge_filter_value_spec.rb``). The check runs when a plan is created or
updated (catalog service, Lago API) and when a whole catalog document is applied.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from api.lago import LagoControlApi
from schemas.catalog import CatalogValidationError
from services.catalog import CatalogService
from sinks.memory_store import MemoryStore

ORG = "org"
NOW = datetime(2026, 11, 21, tzinfo=UTC)
RANGES = [{"from_value": 0, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]
PCT_RANGES = [{"from_value": 0, "to_value": None, "rate": "1", "flat_amount": "0"}]
PROPERTIES = {
    "standard": {"amount": "1"},
    "package": {"amount": "1", "package_size": 10, "free_units": 0},
    "graduated": {"graduated_ranges": RANGES},
    "graduated_percentage": {"graduated_percentage_ranges": PCT_RANGES},
    "volume": {"volume_ranges": RANGES},
    "percentage": {"rate": "1"},
    "dynamic": {},
}
ALL_TYPES = ("count_agg", "sum_agg", "max_agg", "latest_agg", "unique_count_agg",
             "weighted_sum_agg")
RECURRING_TYPES = ("sum_agg", "unique_count_agg", "weighted_sum_agg")


def metric(agg: str, *, recurring: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": "m", "aggregation_type": agg, "recurring": recurring, **extra}
    if agg != "count_agg":
        body["field_name"] = "v"
    return body


def plan(model: str, **charge: Any) -> dict[str, Any]:
    return {"code": "p", "interval": "monthly", "amount_currency": "EUR",
            "charges": [{"billable_metric_code": "m", "charge_model": model,
                         "properties": PROPERTIES[model], **charge}]}


def service() -> CatalogService:
    return CatalogService(MemoryStore(), clock=lambda: NOW)  # type: ignore[arg-type]


def plan_errors(metric_body: dict[str, Any], plan_body: dict[str, Any]) -> dict[str, list[str]]:
    """The 422 details of creating the plan on that metric ({} when it is accepted)."""
    catalog = service()
    catalog.apply(ORG, "billable_metric", metric_body)
    try:
        catalog.apply(ORG, "plan", plan_body)
    except CatalogValidationError as exc:
        assert catalog.get(ORG, "plan", "p") is None  # nothing stored
        return exc.details
    return {}


# --- dynamic ----------------------------------------------------------------------------------
@pytest.mark.parametrize("agg", ALL_TYPES)
def test_dynamic_only_on_sum_agg(agg):
    """app/models/charge.rb:48, 124-129 (validate_dynamic: "Only sum aggregation is compatible
    with Dynamic Pricing for now"): errors.add(:charge_model,
    :invalid_aggregation_type_or_charge_model). Spec: spec/models/charge_spec.rb:299-318."""
    expected = {} if agg == "sum_agg" else {
        "charge_model": ["invalid_aggregation_type_or_charge_model"]}
    assert plan_errors(metric(agg), plan("dynamic")) == expected


# --- percentage and graduated_percentage ------------------------------------------------------
@pytest.mark.parametrize("model", ["percentage", "graduated_percentage"])
@pytest.mark.parametrize("agg", ALL_TYPES)
def test_percentage_models_not_on_latest_agg(model, agg):
    """app/services/charges/validators/percentage_service.rb:23-27 and
    graduated_percentage_service.rb:32-36 (validate_billable_metric): only latest_agg is
    refused, add_error(field: :billable_metric, error_code: "invalid_value"). max_agg and every
    other type are accepted."""
    expected = {"billable_metric": ["invalid_value"]} if agg == "latest_agg" else {}
    assert plan_errors(metric(agg), plan(model)) == expected


def test_percentage_on_latest_agg_is_refused_in_a_charge_filter_too_once():
    """app/models/charge_filter.rb: ChargeFilter includes ChargePropertiesValidation, whose
    validator reads charge.billable_metric (the charge's): the same invalid_value, reported
    once."""
    body = plan("percentage", filters=[{"values": {"k": ["a"]}, "properties": {"rate": "2"}}])
    latest = metric("latest_agg", filters=[{"key": "k", "values": ["a"]}])
    assert plan_errors(latest, body) == {"billable_metric": ["invalid_value"]}


# --- pay_in_advance ---------------------------------------------------------------------------
@pytest.mark.parametrize("agg", ALL_TYPES)
def test_pay_in_advance_only_on_payable_in_advance_metrics(agg):
    """app/models/charge.rb:131-137 (validate_pay_in_advance) with
    app/models/billable_metric.rb:38, 89-91 (AGGREGATION_TYPES_PAYABLE_IN_ADVANCE = count_agg,
    sum_agg, unique_count_agg, custom_agg): errors.add(:pay_in_advance,
    :invalid_aggregation_type_or_charge_model). Spec: spec/models/charge_spec.rb:377-410
    (max_agg, latest_agg, weighted_sum_agg refused)."""
    expected = {} if agg in ("count_agg", "sum_agg", "unique_count_agg") else {
        "pay_in_advance": ["invalid_aggregation_type_or_charge_model"]}
    assert plan_errors(metric(agg), plan("standard", pay_in_advance=True)) == expected


@pytest.mark.parametrize("model", sorted(set(PROPERTIES) - {"dynamic"}))
def test_pay_in_advance_never_on_volume(model):
    """app/models/charge.rb:134 (`if volume? || !billable_metric.payable_in_advance?`).
    Spec: spec/models/charge_spec.rb:412-419 ("when charge model is volume")."""
    expected = {"pay_in_advance": ["invalid_aggregation_type_or_charge_model"]} \
        if model == "volume" else {}
    assert plan_errors(metric("sum_agg"), plan(model, pay_in_advance=True)) == expected


# --- min_amount_cents -------------------------------------------------------------------------
@pytest.mark.parametrize(("pay_in_advance", "min_amount", "expected"), [
    (True, 1200, {"min_amount_cents": ["not_compatible_with_pay_in_advance"]}),
    (True, 0, {}),
    (False, 1200, {}),
])
def test_min_amount_cents_not_with_pay_in_advance(pay_in_advance, min_amount, expected):
    """app/models/charge.rb:147-151 (validate_min_amount_cents: `pay_in_advance? &&
    min_amount_cents.positive?`): errors.add(:min_amount_cents,
    :not_compatible_with_pay_in_advance). Spec: spec/models/charge_spec.rb:449-462."""
    body = plan("standard", pay_in_advance=pay_in_advance, min_amount_cents=min_amount)
    assert plan_errors(metric("sum_agg"), body) == expected


# --- prorated ---------------------------------------------------------------------------------
PRORATE_OK_IN_ARREARS = ("standard", "volume", "graduated")


@pytest.mark.parametrize("model", sorted(PROPERTIES))
@pytest.mark.parametrize("agg", RECURRING_TYPES)
def test_prorated_in_arrears_on_recurring_metrics(model, agg):
    """app/models/charge.rb:153-167 (validate_prorated): in arrears, a recurring metric other
    than weighted_sum_agg with standard, volume or graduated; else errors.add(:prorated,
    :invalid_billable_metric_or_charge_model). Spec: spec/models/charge_spec.rb:491-509
    (percentage refused; weighted_sum refused)."""
    body = plan(model, prorated=True)
    errors = plan_errors(metric(agg, recurring=True), body)
    if agg != "weighted_sum_agg" and model in PRORATE_OK_IN_ARREARS:
        assert errors == {}
    else:
        assert errors.get("prorated") == ["invalid_billable_metric_or_charge_model"]


@pytest.mark.parametrize("model", ["standard", "package", "graduated", "percentage"])
def test_prorated_in_advance_only_standard(model):
    """app/models/charge.rb:162 (`recurring? && pay_in_advance? && standard?`). Spec:
    spec/models/charge_spec.rb:482-489 (package, pay_in_advance, prorated: refused)."""
    body = plan(model, prorated=True, pay_in_advance=True)
    expected = {} if model == "standard" else {
        "prorated": ["invalid_billable_metric_or_charge_model"]}
    assert plan_errors(metric("sum_agg", recurring=True), body) == expected


@pytest.mark.parametrize("agg", ["count_agg", "sum_agg", "max_agg", "latest_agg",
                                 "unique_count_agg"])
@pytest.mark.parametrize("pay_in_advance", [False, True])
def test_prorated_needs_a_recurring_metric(agg, pay_in_advance):
    """app/models/charge.rb:162-163 (`billable_metric.recurring?` in both branches). Spec:
    spec/models/charge_spec.rb:471-480 (standard, pay_in_advance, BM not recurring)."""
    body = plan("standard", prorated=True, pay_in_advance=pay_in_advance)
    errors = plan_errors(metric(agg), body)
    assert errors.get("prorated") == ["invalid_billable_metric_or_charge_model"]


# --- charge filter values ---------------------------------------------------------------------
FILTERED = metric("sum_agg", filters=[{"key": "region", "values": ["eu", "us"]}])


@pytest.mark.parametrize(("values", "expected"), [
    ({"region": ["eu"]}, {}),
    ({"region": ["eu", "us"]}, {}),
    ({"region": ["eu", "apac"]}, {"values": ["value_is_invalid"]}),
    ({"region": ["__ALL_FILTER_VALUES__"]}, {"values": ["value_is_invalid"]}),
    ({"tier": ["gold"]}, {"billable_metric_filter": ["relation_must_exist"],
                          "values": ["value_is_invalid"]}),
])
def test_charge_filter_values_are_the_metrics(values, expected):
    """app/models/charge_filter_value.rb:25-32 (validate_values: every value among the
    billable_metric_filter's, errors.add(:values, :inclusion) -> config/locales/en.yml:19
    value_is_invalid) and :12 (belongs_to :billable_metric_filter: an undeclared key has none,
    `required` -> en.yml:67 relation_must_exist). Spec: spec/models/charge_filter_value_spec.rb
    ("when value is not included in billable_metric_filter values"). Lago's
    __ALL_FILTER_VALUES__ wildcard (valid there, charge_filter_value_spec.rb "when value is
    ALL_FILTER_VALUES") is refused: Meterline's filters match literal values only."""
    body = plan("standard", filters=[{"values": values, "properties": {"amount": "2"}}])
    assert plan_errors(FILTERED, body) == expected


# --- where the check runs ---------------------------------------------------------------------
def test_the_rules_apply_to_a_catalog_document_with_its_own_metrics():
    """The document's own metric is the one checked (it replaces the stored one): a dynamic
    charge is refused on a metric the same document turns into max_agg (charge.rb:124-129),
    and nothing of the document is stored."""
    catalog = service()
    catalog.apply(ORG, "billable_metric", metric("sum_agg"))
    document = {"billable_metrics": [metric("max_agg")], "plans": [plan("dynamic")]}
    with pytest.raises(CatalogValidationError) as err:
        catalog.apply_document(ORG, document)
    assert err.value.details == {"charge_model": ["invalid_aggregation_type_or_charge_model"]}
    assert catalog.get(ORG, "billable_metric", "m").aggregation_type == "sum_agg"
    assert catalog.get(ORG, "plan", "p") is None
    document["billable_metrics"] = [metric("sum_agg")]
    assert catalog.apply_document(ORG, document)["plans"] == 1


def test_lago_api_plan_create_and_update_answer_422():
    """POST and PUT /api/v1/plans answer 422 validation_errors with Lago's field and code
    (charge.rb:131-137 on create, charge.rb:147-151 on update), and store nothing."""
    store = MemoryStore()
    catalog = CatalogService(store, clock=lambda: NOW)  # type: ignore[arg-type]
    control = LagoControlApi(catalog, store, clock=lambda: NOW)  # type: ignore[arg-type]

    def j(obj: dict[str, Any]) -> bytes:
        return orjson.dumps({"plan": obj})

    control.billable_metrics.create(ORG, orjson.dumps({"billable_metric": metric("max_agg")}))
    created = control.plans.create(ORG, j(plan("standard", pay_in_advance=True)))
    assert created.status == 422 and created.body["code"] == "validation_errors"
    assert created.body["error_details"] == {
        "pay_in_advance": ["invalid_aggregation_type_or_charge_model"]}
    assert control.plans.get(ORG, "p").status == 404

    assert control.plans.create(ORG, j(plan("standard", min_amount_cents=500))).status == 200
    updated = control.plans.update(ORG, "p", j({"charges": [
        {"billable_metric_code": "m", "charge_model": "standard", "properties": {"amount": "1"},
         "min_amount_cents": 500, "pay_in_advance": True}]}))
    assert updated.status == 422
    assert updated.body["error_details"] == {
        "pay_in_advance": ["invalid_aggregation_type_or_charge_model"],
        "min_amount_cents": ["not_compatible_with_pay_in_advance"]}
    assert catalog.get(ORG, "plan", "p").charges[0].pay_in_advance is False  # unchanged
