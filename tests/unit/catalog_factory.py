"""Small builders of catalogs (through the Lago-shaped ``parse_*`` functions) and events for tests.

The default catalog: organization ``org_1``; metric ``api`` (sum_agg on ``amount``); plan ``basic``
(id ``plan_basic``) with one standard charge ``ch_1`` on ``api``; customer ``cust_ext_1`` (id
``c_1``); subscription ``sub_ext_1`` (id ``s_1``) started 2025-01-01T00:00:00Z, never terminated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from enrichment.catalog_index import CatalogIndex
from schemas.catalog import (
    BillableMetric,
    Catalog,
    Plan,
    Subscription,
    parse_billable_metric,
    parse_customer,
    parse_plan,
    parse_subscription,
)
from schemas.event import UsageEvent

ORG = "org_1"
SUB = "sub_ext_1"
CUSTOMER = "cust_ext_1"
START = "2025-01-01T00:00:00Z"
START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z = 1_735_689_600 s (worked out by hand)
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def metric(code: str = "api", agg: str = "sum_agg", field_name: str = "amount") -> BillableMetric:
    body: dict[str, Any] = {"code": code, "aggregation_type": agg}
    if agg != "count_agg":
        body["field_name"] = field_name
    return parse_billable_metric(body, ORG)


def charge_filter(
    filter_id: str, values: Mapping[str, list[Any]], group_keys: list[str] | None = None
) -> dict[str, Any]:
    props: dict[str, Any] = {"amount": "2"}
    if group_keys is not None:
        props["pricing_group_keys"] = group_keys
    return {"lago_id": filter_id, "values": dict(values), "properties": props}


def charge(
    charge_id: str = "ch_1",
    code: str = "api",
    *,
    filters: Iterable[dict[str, Any]] = (),
    group_keys: list[str] | None = None,
) -> dict[str, Any]:
    props: dict[str, Any] = {"amount": "1"}
    if group_keys is not None:
        props["pricing_group_keys"] = group_keys
    return {
        "lago_id": charge_id,
        "billable_metric_code": code,
        "charge_model": "standard",
        "properties": props,
        "filters": list(filters),
    }


def plan(*charges: dict[str, Any], code: str = "basic") -> Plan:
    body = {
        "lago_id": f"plan_{code}",
        "code": code,
        "interval": "monthly",
        "amount_currency": "EUR",
        "charges": list(charges),
    }
    return parse_plan(body, ORG)


def subscription(
    sub_id: str = "s_1",
    *,
    external_id: str = SUB,
    plan_code: str = "basic",
    started_at: str = START,
    terminated_at: str | None = None,
) -> Subscription:
    body = {
        "lago_id": sub_id,
        "external_id": external_id,
        "external_customer_id": CUSTOMER,
        "plan_code": plan_code,
        "started_at": started_at,
        "terminated_at": terminated_at,
    }
    return parse_subscription(body, ORG, now=datetime(2025, 6, 1, tzinfo=UTC))


def index(
    metrics: Iterable[BillableMetric] | None = None,
    plans: Iterable[Plan] | None = None,
    subscriptions: Iterable[Subscription] | None = None,
) -> CatalogIndex:
    customer = parse_customer({"lago_id": "c_1", "external_id": CUSTOMER}, ORG)
    return CatalogIndex(
        Catalog(
            metrics=tuple(metrics) if metrics is not None else (metric(),),
            plans=tuple(plans) if plans is not None else (plan(charge()),),
            customers=(customer,),
            subscriptions=tuple(subscriptions) if subscriptions is not None else (subscription(),),
        )
    )


def event(
    properties: dict[str, object] | None = None,
    *,
    code: str = "api",
    tx: str = "tx_1",
    ts: int = START_MS + HOUR_MS,
    external_id: str = SUB,
    amount_cents: Any = None,
) -> UsageEvent:
    return UsageEvent(
        organization_id=ORG,
        external_subscription_id=external_id,
        code=code,
        transaction_id=tx,
        timestamp_ms=ts,
        properties={} if properties is None else properties,
        precise_total_amount_cents=amount_cents,
    )
