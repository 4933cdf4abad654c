"""Every aggregation type through Kafka: events in, priced usage out, equal to the same
computation done directly on the events in Python (tests.reference + billing)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from billing import amount_cents, compute_amount, round_units
from billing.usage import ChargeUsage
from enrichment.catalog_index import CatalogIndex
from enrichment.enricher import enrich
from schemas.catalog import (
    Catalog,
    parse_billable_metric,
    parse_customer,
    parse_plan,
    parse_subscription,
)
from schemas.event import parse_event
from tests.integration.test_end_to_end import produce
from tests.reference import reference_event_values, reference_units

pytestmark = pytest.mark.integration

ORG = "default"
METRICS = [
    {"code": "count", "aggregation_type": "count_agg"},
    {"code": "sum", "aggregation_type": "sum_agg", "field_name": "v",
     "rounding_function": "round", "rounding_precision": 1},
    {"code": "rsum", "aggregation_type": "sum_agg", "field_name": "v", "recurring": True},
    {"code": "max", "aggregation_type": "max_agg", "field_name": "v"},
    {"code": "latest", "aggregation_type": "latest_agg", "field_name": "v"},
    {"code": "unique", "aggregation_type": "unique_count_agg", "field_name": "u"},
    {"code": "weighted", "aggregation_type": "weighted_sum_agg", "field_name": "v"},
    {"code": "pct", "aggregation_type": "sum_agg", "field_name": "v"},
]
CHARGES = [
    {"billable_metric_code": m["code"], "charge_model": "standard",
     "properties": {"amount": "1.5"}}
    for m in METRICS if m["code"] != "pct"
] + [
    {"billable_metric_code": "pct", "charge_model": "percentage",
     "properties": {"rate": "10", "fixed_amount": "0.2", "free_units_per_events": 2,
                    "per_transaction_min_amount": "0.5", "per_transaction_max_amount": "3"}},
]
CATALOG = {
    "billable_metrics": METRICS,
    "plans": [{"code": "all", "interval": "monthly", "amount_currency": "USD",
               "charges": CHARGES}],
    "customers": [{"external_id": "cust", "timezone": "UTC"}],
    "subscriptions": [{"external_id": "sub", "external_customer_id": "cust",
                       "plan_code": "all", "started_at": "2026-01-01T00:00:00Z"}],
}


def local_index() -> CatalogIndex:
    now = datetime.now(UTC)
    return CatalogIndex(Catalog(
        metrics=tuple(parse_billable_metric(m, ORG) for m in METRICS),
        plans=tuple(parse_plan(p, ORG) for p in CATALOG["plans"]),
        customers=tuple(parse_customer(c, ORG) for c in CATALOG["customers"]),
        subscriptions=tuple(parse_subscription(s, ORG, now=now)
                            for s in CATALOG["subscriptions"]),
    ))


def make_events(now_ms: int, period_from_ms: int) -> list[bytes]:
    rng = random.Random(42)
    events = []
    for i in range(400):
        code = rng.choice([m["code"] for m in METRICS])
        # mostly in this period (before now), some in the previous month (recurring carry-over)
        ts = rng.randint(period_from_ms - 20 * 86_400_000, now_ms - 1000)
        properties = {"v": str(Decimal(rng.randint(-2000, 5000)) / 100),
                      "u": rng.choice(["a", "b", "c", "d"]),
                      "operation_type": rng.choice(["add", "add", "remove"])}
        events.append(orjson.dumps({
            "organization_id": ORG, "transaction_id": f"e-{i}", "external_subscription_id": "sub",
            "code": code, "timestamp": ts / 1000, "properties": properties,
        }))
    # the newest "latest" event is positive, so that type is exercised above zero too
    events.append(orjson.dumps({
        "organization_id": ORG, "transaction_id": "last", "external_subscription_id": "sub",
        "code": "latest", "timestamp": (now_ms - 500) / 1000, "properties": {"v": "7.25"},
    }))
    return events


def test_each_aggregation_type_priced_as_computed_from_the_events(stack_factory, kafka_bootstrap):
    stack = stack_factory().start()
    stack.client.post("/api/v1/meterline/catalog", {"catalog": CATALOG})
    now = datetime.now(UTC)
    period_from = datetime(now.year, now.month, 1, tzinfo=UTC)
    next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    from_ms = int(period_from.timestamp() * 1000)
    to_ms = int(next_month.timestamp() * 1000)
    days = (next_month - period_from).days
    raw = make_events(int(time.time() * 1000), from_ms)
    produce(kafka_bootstrap, stack.topic, raw, sub="sub")
    stack.wait_consumed(len(raw))

    usage = stack.client.get(
        "/api/v1/customers/cust/current_usage?external_subscription_id=sub")["customer_usage"]
    by_code = {c["billable_metric"]["code"]: c for c in usage["charges_usage"]}

    index = local_index()
    rows_by_code: dict[str, list] = {m["code"]: [] for m in METRICS}
    for message in raw:
        event = parse_event(orjson.loads(message), now_ms=0)
        rows_by_code[event.code].extend(enrich(event, index))  # type: ignore[arg-type]
    expected_total = 0
    for metric_body in METRICS:
        metric = index.metrics[(ORG, metric_body["code"])]
        rows = rows_by_code[metric.code]
        units = reference_units(
            rows, aggregation_type=metric.aggregation_type, recurring=metric.recurring,
            period_from_ms=from_ms, period_to_ms=to_ms, period_days=days,
        ).get((rows[0].charge_id, "", ()), Decimal(0))
        units = round_units(units, metric.rounding_function, metric.rounding_precision)
        charge = next(c for c in index.plans[(ORG, "all")].charges
                      if c.billable_metric_code == metric.code)
        values = ()
        if charge.charge_model == "percentage":
            values = reference_event_values(rows, from_ms, to_ms).get((charge.id, "", ()), ())
        in_window = sum(1 for r in rows if from_ms <= r.event.timestamp_ms < to_ms)
        amount = compute_amount(charge.charge_model, charge.properties, ChargeUsage(
            units=units, events_count=in_window, event_values=values, currency="USD"))
        got = by_code[metric.code]
        assert Decimal(got["units"]) == units, metric.code
        assert got["events_count"] == in_window, metric.code
        assert got["amount_cents"] == amount_cents(amount, "USD"), metric.code
        expected_total += amount_cents(amount, "USD")
    assert usage["amount_cents"] == expected_total
    if (now - period_from).days >= 3:  # early in a month the window may hold too few events
        zero = [code for code, c in by_code.items() if Decimal(c["units"]) == 0]
        assert zero == [], by_code
