"""Acceptance: the official lago-python-client drives a real `meterline up`, unchanged.

Everything below goes through ``lago_python_client.Client``: catalog, events (single and batch),
current usage, event lookup, termination and error reporting.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import (
    BatchEvent,
    BillableMetric,
    BillableMetricFilter,
    BillableMetricFilters,
    Charge,
    ChargeFilter,
    ChargeFilters,
    Charges,
    Customer,
    Event,
    Plan,
    Subscription,
)

pytestmark = pytest.mark.integration

EVENTS = [  # (transaction_id, method, region or None, n)
    ("t1", "GET", "eu", 1),
    ("t2", "POST", "eu", 2),
    ("t3", "GET", "us", 4),
    ("t4", "POST", "us", 8),
    ("t5", "GET", None, 16),
    ("t6", "POST", "eu", 32),
]


def lago_event(txn: str, method: str, region: str | None, n: int) -> Event:
    properties: dict[str, object] = {"n": n, "method": method}
    if region is not None:
        properties["region"] = region
    return Event(transaction_id=txn, external_subscription_id="s1", code="requests",
                 properties=properties)


def wait_for_usage(client: Client, events_count: int, timeout: float = 60):
    deadline = time.monotonic() + timeout
    usage = None
    while time.monotonic() < deadline:
        usage = client.customers.current_usage("c1", "s1")
        if usage.charges_usage and usage.charges_usage[0].events_count >= events_count:
            return usage
        time.sleep(0.3)
    pytest.fail(f"events not processed after {timeout}s: {usage}")


def test_official_lago_client_works_unchanged(stack_factory):
    # its own catalog topic: other stacks of this session (on the same broker) have a plan "pro"
    stack = stack_factory(METERLINE_CATALOG_TOPIC=f"catalog-{uuid.uuid4().hex[:10]}").start()
    client = Client(api_key="test-key", api_url=stack.client.url)

    # --- billable metric with filters
    metric = client.billable_metrics.create(BillableMetric(
        name="Requests", code="requests", aggregation_type="sum_agg", field_name="n",
        rounding_function="round", rounding_precision=2,
        filters=BillableMetricFilters(__root__=[
            BillableMetricFilter(key="method", values=["GET", "POST"])]),
    ))
    assert metric is not None and metric.code == "requests" and metric.lago_id
    assert [(f.key, f.values) for f in metric.filters.__root__] == [("method", ["GET", "POST"])]

    # --- plan: the official client names the metric by its lago_id
    group = ["region"]
    plan = client.plans.create(Plan(
        name="Pro", code="pro", interval="monthly", amount_cents=0, amount_currency="EUR",
        charges=Charges(__root__=[Charge(
            billable_metric_id=metric.lago_id, charge_model="standard",
            properties={"amount": "1", "pricing_group_keys": group},
            filters=ChargeFilters(__root__=[ChargeFilter(
                values={"method": ["GET"]},
                properties={"amount": "2", "pricing_group_keys": group})]),
        )]),
    ))
    assert plan is not None and plan.code == "pro" and plan.amount_currency == "EUR"
    (charge,) = plan.charges.__root__
    assert charge.billable_metric_code == "requests"
    assert charge.lago_billable_metric_id == metric.lago_id

    customer = client.customers.create(Customer(
        external_id="c1", name="Acme", currency="EUR", timezone="Europe/Paris"))
    assert customer is not None and customer.applicable_timezone == "Europe/Paris"
    assert client.customers.find("c1").lago_id == customer.lago_id

    started = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    subscription = client.subscriptions.create(Subscription(
        external_customer_id="c1", plan_code="pro", external_id="s1", name="Main",
        billing_time="calendar", subscription_at=started.isoformat().replace("+00:00", "Z")))
    assert subscription is not None and subscription.status == "active"
    assert subscription.lago_customer_id == customer.lago_id
    assert client.subscriptions.find("s1").plan_code == "pro"
    listed = client.subscriptions.find_all({"external_customer_id": "c1"})
    assert [s.external_id for s in listed["subscriptions"]] == ["s1"]

    # --- events: two single, four in one batch
    for txn, method, region, n in EVENTS[:2]:
        answer = client.events.create(lago_event(txn, method, region, n))
        assert answer is not None and answer.transaction_id == txn
    client.events.batch_create(BatchEvent(events=[lago_event(*e) for e in EVENTS[2:]]))

    usage = wait_for_usage(client, len(EVENTS))
    (charge_usage,) = usage.charges_usage
    assert charge_usage.events_count == 6 and charge_usage.units == "63"
    assert charge_usage.billable_metric.code == "requests"
    by_filter = {tuple(f.values.get("method", [])): f for f in charge_usage.filters}
    # GET bucket: 1 + 4 + 16 = 21 units × 2 EUR; default bucket (POST): 2 + 8 + 32 = 42 × 1 EUR
    assert (by_filter[("GET",)].units, by_filter[("GET",)].amount_cents) == ("21", 4200)
    assert (by_filter[()].units, by_filter[()].amount_cents) == ("42", 4200)
    groups = {
        (tuple(g.filters[0].values.get("method", [])), g.grouped_by["region"]): g.units
        for g in charge_usage.grouped_usage or []
    }
    assert groups == {
        (("GET",), "eu"): "1", (("GET",), "us"): "4", (("GET",), ""): "16",
        ((), "eu"): "34", ((), "us"): "8",
    }
    assert usage.amount_cents == 8400 and usage.currency == "EUR"

    # --- event lookup by transaction id
    found = client.events.find("t5")
    assert (found.code, found.external_subscription_id) == ("requests", "s1")
    assert found.properties == {"n": 16, "method": "GET"}
    assert found.lago_subscription_id == subscription.lago_id
    with pytest.raises(LagoApiError) as err:
        client.events.find("never-sent")
    assert err.value.status_code == 404

    # --- metric get / list / update / delete
    assert client.billable_metrics.find("requests").lago_id == metric.lago_id
    client.billable_metrics.create(BillableMetric(
        name="Tmp", code="tmp", aggregation_type="count_agg"))
    page = client.billable_metrics.find_all({"per_page": 1})
    assert len(page["billable_metrics"]) == 1
    assert page["meta"]["total_count"] == 2 and page["meta"]["total_pages"] == 2
    renamed = client.billable_metrics.update(BillableMetric(name="Requests v2"), "requests")
    assert renamed.name == "Requests v2" and renamed.field_name == "n"
    deleted = client.billable_metrics.destroy("tmp")
    assert deleted.code == "tmp"
    with pytest.raises(LagoApiError) as err:
        client.billable_metrics.find("tmp")
    assert err.value.status_code == 404
    assert err.value.response["code"] == "billable_metric_not_found"

    # --- plan read / update
    assert client.plans.find("pro").charges.__root__[0].lago_id == charge.lago_id
    updated = client.plans.update(Plan(description="Our pro plan"), "pro")
    assert updated.description == "Our pro plan"
    assert updated.charges.__root__[0].lago_id == charge.lago_id

    # --- bad bodies: 422 with Lago's codes
    with pytest.raises(LagoApiError) as err:
        client.plans.create(Plan(code="bad", interval="daily", amount_currency="EUR"))
    assert err.value.status_code == 422
    assert err.value.response["error_details"] == {"interval": ["value_is_invalid"]}
    with pytest.raises(LagoApiError) as err:
        client.plans.create(Plan(
            code="gap", interval="monthly", amount_currency="EUR",
            charges=Charges(__root__=[Charge(
                billable_metric_id=metric.lago_id, charge_model="graduated",
                properties={"graduated_ranges": [
                    {"from_value": 0, "to_value": 10, "per_unit_amount": "1",
                     "flat_amount": "0"},
                    {"from_value": 20, "to_value": None, "per_unit_amount": "1",
                     "flat_amount": "0"}]})])))
    assert err.value.status_code == 422
    assert "invalid_graduated_ranges" in err.value.response["error_details"]["graduated_ranges"]

    # --- terminate
    ended = client.subscriptions.destroy("s1")
    assert ended.status == "terminated" and ended.terminated_at
    assert client.subscriptions.find_all({"external_customer_id": "c1"})["subscriptions"] == []
    terminated = client.subscriptions.find_all(
        {"external_customer_id": "c1", "status[]": ["terminated"]})["subscriptions"]
    assert [s.status for s in terminated] == ["terminated"]
    with pytest.raises(LagoApiError) as err:
        client.subscriptions.destroy("s1")
    assert err.value.status_code == 404
    # usage of the terminated subscription is still readable through the client
    assert client.customers.current_usage("c1", "s1").amount_cents == 8400
