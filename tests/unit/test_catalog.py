"""Catalog validation (Lago codes) and the catalog service's all-or-nothing apply."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas.catalog import CatalogValidationError, parse_billable_metric, parse_plan
from services.catalog import CatalogService
from sinks.memory_store import MemoryStore
from sinks.store import CatalogDoc

NOW = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"aggregation_type": "count_agg"}, "code", "value_is_mandatory"),
        ({"code": "m", "aggregation_type": "avg_agg"}, "aggregation_type", "value_is_invalid"),
        ({"code": "m", "aggregation_type": "sum_agg"}, "field_name", "value_is_mandatory"),
        ({"code": "m", "aggregation_type": "max_agg", "field_name": "x", "recurring": True},
         "recurring", "not_compatible_with_aggregation_type"),
        ({"code": "m", "aggregation_type": "count_agg", "rounding_function": "up"},
         "rounding_function", "value_is_invalid"),
        ({"code": "m", "aggregation_type": "count_agg", "filters": [{"key": "k"}]},
         "filters", "invalid_format"),
    ],
)
def test_billable_metric_validation(body, field, code):
    with pytest.raises(CatalogValidationError) as err:
        parse_billable_metric(body, "org")
    assert code in err.value.details[field]


def test_filter_values_are_canonical_numbers():
    metric = parse_billable_metric(
        {"code": "m", "aggregation_type": "count_agg",
         "filters": [{"key": "size", "values": [1.0, "2.50", "x"]}]}, "org")
    assert metric.filters[0].values == ("1", "2.5", "x")


def test_plan_ids_are_stable_across_parses():
    body = {"code": "p", "interval": "monthly", "amount_currency": "eur",
            "charges": [{"billable_metric_code": "m", "charge_model": "standard",
                         "properties": {"amount": "1"}}]}
    first, second = parse_plan(body, "org"), parse_plan(body, "org")
    assert first.charges[0].id == second.charges[0].id and first.amount_currency == "EUR"


def test_apply_document_is_all_or_nothing_and_checks_references():
    service = CatalogService(MemoryStore(), clock=lambda: NOW)  # type: ignore[arg-type]
    document = {
        "billable_metrics": [{"code": "calls", "aggregation_type": "count_agg"}],
        "plans": [{"code": "p", "interval": "monthly", "amount_currency": "EUR",
                   "charges": [{"billable_metric_code": "calls", "charge_model": "standard",
                                "properties": {"amount": "-1"}}]}],
    }
    with pytest.raises(CatalogValidationError) as err:
        service.apply_document("org", document)
    assert err.value.details == {"plan[1].amount": ["invalid_amount"]}
    assert service.index.metrics == {}  # the valid metric was not applied either

    document["plans"][0]["charges"][0]["properties"]["amount"] = "1"
    document["subscriptions"] = [{"external_id": "s", "external_customer_id": "c",
                                  "plan_code": "missing"}]
    with pytest.raises(CatalogValidationError) as err:
        service.apply_document("org", document)
    assert err.value.details == {"plan_code": ["plan_not_found"]}


def test_catalog_survives_a_reload_with_pinned_subscription_start():
    store = MemoryStore()
    service = CatalogService(store, clock=lambda: NOW)  # type: ignore[arg-type]
    service.apply_document("org", {
        "billable_metrics": [{"code": "calls", "aggregation_type": "count_agg"}],
        "plans": [{"code": "p", "interval": "monthly", "amount_currency": "EUR"}],
        "subscriptions": [{"external_id": "s", "external_customer_id": "c", "plan_code": "p"}],
    })
    later = CatalogService(store, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    later.load()
    sub = later.index.subscription_by_id("org", "s")
    assert sub is not None and sub.started_at == NOW  # not the reload time
    assert ("org", "calls") in later.index.metrics


def test_a_stored_version_todays_rules_reject_is_skipped_at_load_not_fatal():
    """Issue 16: bounds added to the catalog (rounding_precision, amounts) must not stop a
    worker whose store holds a version an earlier release accepted."""
    store = MemoryStore()
    service = CatalogService(store, clock=lambda: NOW)  # type: ignore[arg-type]
    service.apply_document("org", {"billable_metrics": [
        {"code": "calls", "aggregation_type": "count_agg", "rounding_precision": 2}]})
    old_release = orjson.dumps({"code": "calls", "aggregation_type": "count_agg",
                                "rounding_function": "round",
                                "rounding_precision": 10**9}).decode()
    store.docs.append(CatalogDoc("org", "billable_metric", "calls", old_release, version=99))
    later = CatalogService(store, clock=lambda: NOW)  # type: ignore[arg-type]
    later.load()  # does not raise
    assert later.skipped_versions == [("org", "billable_metric", "calls", 99)]
    assert later.index.metrics[("org", "calls")].rounding_precision == 2
