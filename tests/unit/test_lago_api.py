"""Lago's control-plane API without a web server: shapes, Lago codes, never a 500.

Success bodies are also parsed with lago-python-client's own response models, so a field the
official client requires cannot go missing unnoticed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from lago_python_client.models.billable_metric import BillableMetricResponse
from lago_python_client.models.customer import CustomerResponse
from lago_python_client.models.event import EventResponse
from lago_python_client.models.plan import PlanResponse
from lago_python_client.models.subscription import SubscriptionResponse

from api.lago import LagoControlApi
from api.lago.events import event_json
from api.lago.plans import _keep_filter_ids
from services.catalog import CatalogService
from sinks.memory_store import MemoryStore

ORG = "org-1"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup():
    store = MemoryStore()
    clock = Clock()
    catalog = CatalogService(store, clock=clock)  # type: ignore[arg-type]
    return LagoControlApi(catalog, store, clock=clock), store, clock  # type: ignore[arg-type]


@pytest.fixture
def control(setup) -> LagoControlApi:
    return setup[0]


def j(root: str, obj: object) -> bytes:
    return orjson.dumps({root: obj})


METRIC = {
    "code": "requests", "name": "Requests", "aggregation_type": "sum_agg", "field_name": "n",
    "rounding_function": "round", "rounding_precision": 2, "description": "API calls",
    "filters": [{"key": "method", "values": ["GET", "POST"]}],
}


def plan_body(metric_id: str | None = None, **extra: object) -> dict:
    charge = {
        "charge_model": "standard",
        "properties": {"amount": "1", "pricing_group_keys": ["region"]},
        "filters": [{"values": {"method": ["GET"]}, "properties": {"amount": "2"}}],
        "min_amount_cents": 100,
        "prorated": False,
    }
    if metric_id:
        charge["billable_metric_id"] = metric_id
    else:
        charge["billable_metric_code"] = "requests"
    return {"code": "pro", "name": "Pro", "interval": "monthly", "amount_currency": "eur",
            "amount_cents": 1000, "charges": [charge], **extra}


def with_catalog(control: LagoControlApi) -> dict:
    metric = control.billable_metrics.create(ORG, j("billable_metric", METRIC))
    assert metric.status == 200, metric.body
    plan = control.plans.create(ORG, j("plan", plan_body()))
    assert plan.status == 200, plan.body
    return plan.body["plan"]


# --- billable metrics ------------------------------------------------------------------------
def test_metric_create_get_list_update_delete(control):
    created = control.billable_metrics.create(ORG, j("billable_metric", METRIC))
    assert created.status == 200
    metric = created.body["billable_metric"]
    BillableMetricResponse.parse_obj(metric)
    assert metric["code"] == "requests" and metric["lago_id"]
    assert metric["filters"] == [{"key": "method", "values": ["GET", "POST"]}]
    assert (metric["rounding_function"], metric["rounding_precision"]) == ("round", 2)
    assert metric["description"] == "API calls" and metric["created_at"] == "2026-11-21T12:00:00Z"
    assert control.billable_metrics.get(ORG, "requests").body == created.body

    control.billable_metrics.create(ORG, j("billable_metric", {
        "code": "storage", "aggregation_type": "weighted_sum_agg", "field_name": "gb",
        "recurring": True}))
    listed = control.billable_metrics.list(ORG, {"per_page": "1"})
    assert listed.status == 200 and len(listed.body["billable_metrics"]) == 1
    assert listed.body["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None,
                                   "total_pages": 2, "total_count": 2}
    second = control.billable_metrics.list(ORG, [("page", "2"), ("per_page", "1")]).body
    assert second["meta"]["next_page"] is None and second["meta"]["prev_page"] == 1
    codes = {m["code"] for m in listed.body["billable_metrics"] + second["billable_metrics"]}
    assert codes == {"requests", "storage"}
    storage = control.billable_metrics.get(ORG, "storage").body["billable_metric"]
    assert storage["weighted_interval"] == "seconds" and storage["recurring"] is True

    updated = control.billable_metrics.update(
        ORG, "requests", j("billable_metric", {"name": "Requests v2"}))
    assert updated.status == 200
    body = updated.body["billable_metric"]
    assert body["name"] == "Requests v2" and body["field_name"] == "n"  # the rest is kept
    assert body["lago_id"] == metric["lago_id"] and body["created_at"] == metric["created_at"]

    deleted = control.billable_metrics.delete(ORG, "storage")
    assert deleted.status == 200 and deleted.body["billable_metric"]["code"] == "storage"
    assert control.billable_metrics.get(ORG, "storage").body["code"] == "billable_metric_not_found"
    assert control.billable_metrics.list(ORG).body["meta"]["total_count"] == 1


def test_metric_code_rename_and_conflicts(control):
    control.billable_metrics.create(ORG, j("billable_metric", METRIC))
    again = control.billable_metrics.create(ORG, j("billable_metric", METRIC))
    assert again.status == 422 and again.body["error_details"] == {"code": ["value_already_exist"]}
    renamed = control.billable_metrics.update(ORG, "requests", j("billable_metric", {"code": "r2"}))
    assert renamed.status == 200 and renamed.body["billable_metric"]["code"] == "r2"
    assert control.billable_metrics.get(ORG, "requests").status == 404
    control.plans.create(ORG, j("plan", {**plan_body(), "charges": [
        {**plan_body()["charges"][0], "billable_metric_code": "r2"}]}))
    used = control.billable_metrics.update(ORG, "r2", j("billable_metric", {"code": "r3"}))
    assert used.status == 422 and used.body["error_details"] == {"code": ["value_is_immutable"]}


@pytest.mark.parametrize(
    ("body", "status", "code", "details"),
    [
        (b"{nope", 400, "bad_request", {"body": ["invalid_json"]}),
        (b'{"metric": {}}', 400, "bad_request", {"billable_metric": ["value_is_mandatory"]}),
        (b'{"billable_metric": null}', 400, "bad_request",
         {"billable_metric": ["value_is_mandatory"]}),
        (b'{"billable_metric": [1]}', 422, "validation_errors",
         {"billable_metric": ["invalid_type"]}),
        (j("billable_metric", {"code": 5, "aggregation_type": "count_agg"}), 422,
         "validation_errors", {"code": ["invalid_type"]}),
        (j("billable_metric", {"code": "m", "aggregation_type": "avg_agg", "field_name": "x"}),
         422,
         "validation_errors", {"aggregation_type": ["value_is_invalid"]}),
        (j("billable_metric", {"code": "m", "aggregation_type": "count_agg",
                               "filters": [{"key": "k", "values": "GET"}]}), 422,
         "validation_errors", {"filters": ["invalid_format"]}),
        (j("billable_metric", {"code": "m", "aggregation_type": "sum_agg", "field_name": "x",
                               "rounding_precision": "two"}), 422,
         "validation_errors", {"rounding_precision": ["invalid_type"]}),
    ],
)
def test_metric_bad_input_is_4xx_with_lagos_envelope(control, body, status, code, details):
    for response in (control.billable_metrics.create(ORG, body),):
        assert response.status == status
        assert response.body["status"] == status and response.body["code"] == code
        assert response.body["error_details"] == details


def test_metric_unknown_code_is_404(control):
    for response in (
        control.billable_metrics.get(ORG, "nope"),
        control.billable_metrics.update(ORG, "nope", j("billable_metric", {"name": "x"})),
        control.billable_metrics.delete(ORG, "nope"),
    ):
        assert response.status == 404
        assert response.body == {"status": 404, "error": "Not Found",
                                 "code": "billable_metric_not_found"}
    bad_update = control.billable_metrics.update(ORG, "nope", b"[]")
    assert bad_update.status == 400


def test_resources_are_scoped_to_the_organization(control):
    control.billable_metrics.create(ORG, j("billable_metric", METRIC))
    assert control.billable_metrics.get("other-org", "requests").status == 404
    assert control.billable_metrics.list("other-org").body["billable_metrics"] == []
    # the same code is free in another organization
    assert control.billable_metrics.create("other-org", j("billable_metric", METRIC)).status == 200


def test_deleting_a_metric_removes_its_charges_from_plans(control):
    with_catalog(control)
    control.billable_metrics.delete(ORG, "requests")
    plan = control.plans.get(ORG, "pro").body["plan"]
    assert plan["charges"] == []


# --- plans -----------------------------------------------------------------------------------
def test_plan_create_with_billable_metric_id_as_the_official_client_sends_it(control):
    metric = control.billable_metrics.create(ORG, j("billable_metric", METRIC))
    metric_id = metric.body["billable_metric"]["lago_id"]
    created = control.plans.create(ORG, j("plan", plan_body(metric_id)))
    assert created.status == 200, created.body
    plan = created.body["plan"]
    PlanResponse.parse_obj(plan)
    assert plan["amount_currency"] == "EUR" and plan["interval"] == "monthly"
    (charge,) = plan["charges"]
    assert charge["billable_metric_code"] == "requests"
    assert charge["lago_billable_metric_id"] == metric_id
    assert charge["properties"] == {"amount": "1", "pricing_group_keys": ["region"]}
    assert charge["filters"][0]["values"] == {"method": ["GET"]}
    assert charge["filters"][0]["properties"] == {"amount": "2"}
    assert (charge["min_amount_cents"], charge["prorated"]) == (100, False)
    assert control.plans.get(ORG, "pro").body == created.body
    listed = control.plans.list(ORG).body
    assert [p["code"] for p in listed["plans"]] == ["pro"]
    assert listed["meta"]["total_count"] == 1


def test_plan_update_keeps_charge_ids_and_merges_a_charge_given_by_id(control):
    plan = with_catalog(control)
    charge_id = plan["charges"][0]["lago_id"]
    filter_id = plan["charges"][0]["filters"][0]["lago_id"]
    control.billable_metrics.create(ORG, j("billable_metric", {
        "code": "calls", "aggregation_type": "count_agg"}))
    update = {"name": "Pro 2", "charges": [
        {"billable_metric_code": "calls", "charge_model": "standard",
         "properties": {"amount": "0.5"}},
        {"id": charge_id, "properties": {"amount": "3"},
         "filters": [{"values": {"method": ["GET"]}, "properties": {"amount": "4"}}]},
    ]}
    response = control.plans.update(ORG, "pro", j("plan", update))
    assert response.status == 200, response.body
    updated = response.body["plan"]
    assert updated["name"] == "Pro 2" and updated["interval"] == "monthly"
    calls, requests = updated["charges"]
    assert requests["lago_id"] == charge_id  # same charge (its usage is kept), now second
    assert requests["charge_model"] == "standard" and requests["min_amount_cents"] == 100
    assert requests["properties"] == {"amount": "3"}
    assert requests["filters"][0]["lago_id"] == filter_id
    assert requests["filters"][0]["properties"] == {"amount": "4"}
    assert calls["billable_metric_code"] == "calls" and calls["lago_id"] != charge_id
    # an update without charges keeps them
    kept = control.plans.update(ORG, "pro", j("plan", {"description": "d"})).body["plan"]
    assert [c["lago_id"] for c in kept["charges"]] == [calls["lago_id"], charge_id]


@pytest.mark.parametrize(
    ("change", "status", "details"),
    [
        ({"interval": "daily"}, 422, {"interval": ["value_is_invalid"]}),
        ({"amount_currency": None}, 422, {"amount_currency": ["value_is_mandatory"]}),
        ({"charges": "none"}, 422, {"charges": ["invalid_type"]}),
        ({"charges": [{"billable_metric_code": "requests", "charge_model": "graduated",
                       "properties": {"graduated_ranges": [
                           {"from_value": 0, "to_value": 10, "per_unit_amount": "1",
                            "flat_amount": "0"},
                           {"from_value": 20, "to_value": None, "per_unit_amount": "1",
                            "flat_amount": "0"}]}}]},
         422, {"graduated_ranges": ["invalid_graduated_ranges"]}),
        ({"charges": [{"billable_metric_code": "requests", "charge_model": "standard",
                       "properties": {"amount": "-1"}}]}, 422, {"amount": ["invalid_amount"]}),
        ({"charges": [{"billable_metric_code": "requests", "charge_model": "magic"}]}, 422,
         {"charge_model": ["value_is_invalid"]}),
        ({"charges": [{"billable_metric_code": "requests", "charge_model": "standard",
                       "properties": {"amount": "1"}, "filters": [{"values": "GET"}]}]}, 422,
         {"filters": ["invalid_format"]}),
    ],
)
def test_plan_validation_errors_are_422_with_lago_codes(control, change, status, details):
    control.billable_metrics.create(ORG, j("billable_metric", METRIC))
    response = control.plans.create(ORG, j("plan", {**plan_body(), **change}))
    assert response.status == status, response.body
    assert response.body["code"] == "validation_errors"
    assert response.body["error_details"] == details
    assert control.plans.get(ORG, "pro").status == 404  # nothing stored


def test_plan_unknown_metric_and_unknown_plan_are_404(control):
    unknown_id = control.plans.create(ORG, j("plan", plan_body("no-such-id")))
    assert unknown_id.status == 404 and unknown_id.body["code"] == "billable_metric_not_found"
    unknown_code = control.plans.create(ORG, j("plan", plan_body()))
    assert unknown_code.status == 404
    for response in (control.plans.get(ORG, "x"), control.plans.delete(ORG, "x"),
                     control.plans.update(ORG, "x", j("plan", {"name": "n"}))):
        assert response.status == 404 and response.body["code"] == "plan_not_found"


def test_plan_conflicts_and_delete_terminates_its_subscriptions(setup):
    control, _, clock = setup
    with_catalog(control)
    again = control.plans.create(ORG, j("plan", plan_body()))
    assert again.status == 422 and again.body["error_details"] == {"code": ["value_already_exist"]}
    control.subscriptions.create(ORG, j("subscription", {
        "external_id": "s1", "external_customer_id": "c1", "plan_code": "pro"}))
    rename = control.plans.update(ORG, "pro", j("plan", {"code": "pro2"}))
    assert rename.status == 422 and rename.body["error_details"] == {"code": ["value_is_immutable"]}
    clock.now = NOW + timedelta(hours=1)
    deleted = control.plans.delete(ORG, "pro")
    assert deleted.status == 200 and deleted.body["plan"]["code"] == "pro"
    sub = control.subscriptions.get(ORG, "s1").body["subscription"]
    assert sub["status"] == "terminated" and sub["terminated_at"] == "2026-11-21T13:00:00Z"


# --- customers -------------------------------------------------------------------------------
def test_customer_create_or_update_by_external_id(setup):
    control, _, clock = setup
    created = control.customers.create(ORG, j("customer", {
        "external_id": "c1", "name": "Acme", "timezone": "Europe/Paris", "currency": "eur",
        "email": "billing@acme.test"}))
    assert created.status == 200
    customer = created.body["customer"]
    CustomerResponse.parse_obj(customer)
    assert (customer["timezone"], customer["applicable_timezone"]) == ("Europe/Paris",
                                                                       "Europe/Paris")
    assert customer["currency"] == "EUR" and customer["email"] == "billing@acme.test"
    clock.now = NOW + timedelta(minutes=5)
    updated = control.customers.create(ORG, j("customer", {"external_id": "c1", "name": "Acme 2"}))
    body = updated.body["customer"]
    assert body["name"] == "Acme 2" and body["timezone"] == "Europe/Paris"  # merged
    assert body["lago_id"] == customer["lago_id"]
    assert (body["created_at"], body["updated_at"]) == ("2026-11-21T12:00:00Z",
                                                        "2026-11-21T12:05:00Z")
    assert control.customers.get(ORG, "c1").body == updated.body
    plain = control.customers.create(ORG, j("customer", {"external_id": "c2"})).body["customer"]
    assert plain["timezone"] is None and plain["applicable_timezone"] == "UTC"
    assert control.customers.list(ORG).body["meta"]["total_count"] == 2


def test_customer_errors(control):
    assert control.customers.get(ORG, "nobody").body["code"] == "customer_not_found"
    bad_tz = control.customers.create(ORG, j("customer", {"external_id": "c", "timezone": "Mars"}))
    assert bad_tz.status == 422 and bad_tz.body["error_details"] == {
        "timezone": ["invalid_timezone"]}
    missing = control.customers.create(ORG, j("customer", {"name": "x"}))
    assert missing.status == 422 and missing.body["error_details"] == {
        "external_id": ["value_is_mandatory"]}
    assert control.customers.create(ORG, b'{"customer": "c"}').status == 422
    assert control.customers.create(ORG, b"").status == 400


# --- subscriptions ---------------------------------------------------------------------------
def test_subscription_create_get_list_terminate(setup):
    control, _, clock = setup
    with_catalog(control)
    created = control.subscriptions.create(ORG, j("subscription", {
        "external_id": "s1", "external_customer_id": "c1", "plan_code": "pro",
        "billing_time": "anniversary", "subscription_at": "2026-11-10T08:00:00Z",
        "name": "Main"}))
    assert created.status == 200, created.body
    sub = created.body["subscription"]
    SubscriptionResponse.parse_obj(sub)
    assert sub["status"] == "active" and sub["billing_time"] == "anniversary"
    assert sub["started_at"] == sub["subscription_at"] == "2026-11-10T08:00:00Z"
    # the first period starts with the subscription; it ends the day before its anniversary
    assert sub["current_billing_period_started_at"] == "2026-11-10T08:00:00Z"
    assert sub["current_billing_period_ending_at"] == "2026-12-09T23:59:59Z"
    assert sub["plan_amount_cents"] == 1000 and sub["plan_amount_currency"] == "EUR"
    # the customer did not exist: created, as Lago does
    customer = control.customers.get(ORG, "c1").body["customer"]
    assert sub["lago_customer_id"] == customer["lago_id"]
    # creating it again is idempotent
    again = control.subscriptions.create(ORG, j("subscription", {
        "external_id": "s1", "external_customer_id": "c1", "plan_code": "pro"}))
    assert again.status == 200 and again.body["subscription"]["lago_id"] == sub["lago_id"]
    assert control.subscriptions.get(ORG, "s1").body["subscription"] == sub

    listed = control.subscriptions.list(ORG, [("external_customer_id", "c1")]).body
    assert [s["external_id"] for s in listed["subscriptions"]] == ["s1"]
    assert control.subscriptions.list(ORG, {"external_customer_id": "c2"}).body[
        "subscriptions"] == []

    clock.now = NOW + timedelta(days=1)
    ended = control.subscriptions.terminate(ORG, "s1")
    assert ended.status == 200
    assert ended.body["subscription"]["status"] == "terminated"
    assert ended.body["subscription"]["terminated_at"] == "2026-11-22T12:00:00Z"
    assert control.subscriptions.terminate(ORG, "s1").body["code"] == "subscription_not_found"
    assert control.subscriptions.list(ORG, {"external_customer_id": "c1"}).body[
        "subscriptions"] == []
    terminated = control.subscriptions.list(
        ORG, [("external_customer_id", "c1"), ("status[]", "terminated")]).body
    assert [s["status"] for s in terminated["subscriptions"]] == ["terminated"]


def test_pending_subscription_is_canceled_on_delete(control):
    with_catalog(control)
    created = control.subscriptions.create(ORG, j("subscription", {
        "external_id": "s1", "external_customer_id": "c1", "plan_code": "pro",
        "subscription_at": "2027-01-01T00:00:00Z"}))
    assert created.body["subscription"]["status"] == "pending"
    canceled = control.subscriptions.terminate(ORG, "s1")
    assert canceled.status == 200 and canceled.body["subscription"]["status"] == "canceled"
    assert control.subscriptions.get(ORG, "s1").status == 404


@pytest.mark.parametrize(
    ("body", "status", "code", "details"),
    [
        ({"external_customer_id": "c1", "plan_code": "pro"}, 422, "validation_errors",
         {"external_id": ["value_is_mandatory"]}),
        ({"external_id": "s", "external_customer_id": "c1", "plan_code": "pro",
          "billing_time": "sometimes"}, 422, "validation_errors",
         {"billing_time": ["value_is_invalid"]}),
        ({"external_id": "s", "external_customer_id": "c1", "plan_code": "pro",
          "subscription_at": "tomorrow"}, 422, "validation_errors",
         {"subscription_at": ["invalid_date"]}),
        ({"external_id": "s", "external_customer_id": "c1", "plan_code": "gold"}, 404,
         "plan_not_found", None),
    ],
)
def test_subscription_errors(control, body, status, code, details):
    with_catalog(control)
    response = control.subscriptions.create(ORG, j("subscription", body))
    assert response.status == status and response.body["code"] == code
    assert response.body.get("error_details") == details


def test_subscription_plan_change_and_unknown_ids(control):
    with_catalog(control)
    control.plans.create(ORG, j("plan", {**plan_body(), "code": "other"}))
    control.subscriptions.create(ORG, j("subscription", {
        "external_id": "s1", "external_customer_id": "c1", "plan_code": "pro"}))
    change = control.subscriptions.create(ORG, j("subscription", {
        "external_id": "s1", "external_customer_id": "c1", "plan_code": "other"}))
    assert change.status == 422 and change.body["error_details"] == {
        "external_id": ["value_already_exist"]}
    assert control.subscriptions.get(ORG, "nope").body["code"] == "subscription_not_found"
    assert control.subscriptions.terminate(ORG, "nope").status == 404


# --- events ----------------------------------------------------------------------------------
def test_event_lookup_by_transaction_id(setup):
    control, store, _ = setup
    row = {
        "organization_id": ORG, "external_subscription_id": "s1", "subscription_id": "sub-id",
        "customer_id": "cus-id", "plan_id": "plan-id", "code": "requests",
        "transaction_id": "t-1", "timestamp_ms": 1_795_000_000_123, "value": "5",
        "properties": '{"n": 5, "method": "GET"}', "precise_total_amount_cents": Decimal("1.50"),
        "charge_id": "ch", "charge_filter_id": "", "ingested_at_ms": 1_795_000_001_000,
    }
    store.rows.setdefault("events", []).append(row)
    found = control.events.get(ORG, "t-1")
    assert found.status == 200
    event = found.body["event"]
    EventResponse.parse_obj(event)
    assert event == {
        "lago_id": event["lago_id"], "transaction_id": "t-1",
        "external_subscription_id": "s1", "lago_subscription_id": "sub-id",
        "lago_customer_id": "cus-id", "code": "requests",
        "timestamp": "2026-11-18T11:06:40.123Z", "properties": {"n": 5, "method": "GET"},
        "precise_total_amount_cents": "1.5", "created_at": "2026-11-18T11:06:41.000Z",
    }
    assert control.events.get(ORG, "t-1").body["event"]["lago_id"] == event["lago_id"]
    missing = control.events.get(ORG, "t-2")
    assert missing.status == 404 and missing.body["code"] == "event_not_found"
    assert control.events.get("other-org", "t-1").status == 404
    assert control.events.get(ORG, "t-1", {"external_subscription_id": "s9"}).status == 404


def test_event_lookup_keeps_every_digit_of_a_number_property():
    """Issue 16, finding 5: stored properties were read back as floats."""
    row = {"properties": '{"gb": 12345678.123456789012, "n": 1180591620717411303424}',
           "transaction_id": "t", "external_subscription_id": "s", "timestamp_ms": 0}
    properties = event_json("org", row)["properties"]
    assert properties == {"gb": Decimal("12345678.123456789012"), "n": 2**70}


def test_filter_ids_are_kept_for_values_with_exact_numbers():
    previous = {"filters": [{"values": {"size": [Decimal("0.5")]}, "lago_id": "f1"}]}
    kept = _keep_filter_ids([{"values": {"size": [Decimal("0.5")]}}], previous)
    assert kept == [{"values": {"size": [Decimal("0.5")]}, "lago_id": "f1"}]
