"""Pricing pre-aggregated usage into Lago's customer_usage (hand-computed amounts)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from aggregation.units import FeeUsage
from billing.customer_usage import customer_usage
from schemas.catalog import parse_billable_metric, parse_customer, parse_plan, parse_subscription

ORG = "org"
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def _catalog():
    metrics = {
        "calls": parse_billable_metric({"code": "calls", "aggregation_type": "count_agg"}, ORG),
        "gb": parse_billable_metric(
            {"code": "gb", "aggregation_type": "sum_agg", "field_name": "gb",
             "rounding_function": "ceil", "rounding_precision": 0}, ORG),
    }
    plan = parse_plan({
        "code": "p", "interval": "monthly", "amount_currency": "JPY",
        "charges": [
            {"billable_metric_code": "calls", "charge_model": "package",
             "properties": {"amount": "100", "package_size": 10, "free_units": 5}},
            {"billable_metric_code": "gb", "charge_model": "standard",
             "properties": {"amount": "3", "pricing_group_keys": ["region"]},
             "filters": [{"values": {"tier": ["gold"]}, "properties": {"amount": "1"}}]},
        ],
    }, ORG)
    sub = parse_subscription({"external_id": "s", "external_customer_id": "c",
                              "plan_code": "p", "started_at": "2026-01-01T00:00:00Z"}, ORG, now=NOW)
    customer = parse_customer({"external_id": "c"}, ORG)
    return metrics, plan, sub, customer


def agg(charge_id, filter_id="", group=(), agg_type="sum_agg", count=0, total="0"):
    units = Decimal(count) if agg_type == "count_agg" else Decimal(total)
    return FeeUsage(charge_id, filter_id, group, units, count)


def test_fees_per_charge_filter_and_group_in_a_zero_decimal_currency():
    metrics, plan, sub, customer = _catalog()
    calls, gb = plan.charges
    gold = gb.filters[0].id
    aggregates = [
        agg(calls.id, agg_type="count_agg", count=26),
        agg(gb.id, "", (("region", "eu"),), count=2, total="1.2"),
        agg(gb.id, "", (("region", "us"),), count=1, total="2"),
        agg(gb.id, gold, (("region", "eu"),), count=3, total="10.01"),
    ]
    usage = customer_usage(customer=customer, subscription=sub, plan=plan, metrics=metrics,
                           usages=aggregates, period_from=NOW, period_to=NOW)
    charges = {c["billable_metric"]["code"]: c for c in usage["charges_usage"]}
    # package: ceil((26 - 5) / 10) = 3 packages × 100 JPY
    assert charges["calls"]["amount_cents"] == 300
    # gb rounding ceil(…, 0): eu default ceil(1.2)=2 × 3 = 6; us ceil(2)=2 × 3 = 6;
    # gold filter (amount 1): ceil(10.01)=11 × 1 = 11  → 23 JPY
    assert charges["gb"]["amount_cents"] == 23
    assert charges["gb"]["units"] == "15"
    groups = {(g["lago_charge_filter_id"], g["grouped_by"]["region"]): g["amount_cents"]
              for g in charges["gb"]["grouped_usage"]}
    assert groups == {(None, "eu"): 6, (None, "us"): 6, (gold, "eu"): 11}
    filters = {f["lago_charge_filter_id"]: f for f in charges["gb"]["filters"]}
    assert filters[gold]["values"] == {"tier": ["gold"]} and filters[gold]["amount_cents"] == 11
    assert usage["amount_cents"] == 323 and usage["currency"] == "JPY"


def test_charge_without_usage_is_listed_at_zero():
    metrics, plan, sub, customer = _catalog()
    usage = customer_usage(customer=customer, subscription=sub, plan=plan, metrics=metrics,
                           usages=[], period_from=NOW, period_to=NOW)
    assert [c["amount_cents"] for c in usage["charges_usage"]] == [0, 0]
    assert [c["units"] for c in usage["charges_usage"]] == ["0", "0"]


def test_min_amount_true_up_is_prorated_by_days_and_added_to_the_total():
    metrics, _plan, sub, customer = _catalog()
    plan = parse_plan({
        "code": "m", "interval": "monthly", "amount_currency": "EUR",
        "charges": [{"billable_metric_code": "calls", "charge_model": "standard",
                     "properties": {"amount": "1"}, "min_amount_cents": 3000}],
    }, ORG)
    calls = plan.charges[0]
    full = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    usages = [agg(calls.id, agg_type="count_agg", count=4)]  # 4 × 1.00 EUR = 400 cents

    # whole month: true-up 3000 - 400 = 2600
    whole = customer_usage(customer=customer, subscription=sub, plan=plan, metrics=metrics,
                           usages=usages, period_from=full[0], period_to=full[1],
                           full_period=full)
    assert whole["charges_usage"][0]["true_up_fee"] == {"amount_cents": 2600}
    assert whole["amount_cents"] == 3000

    # started Nov 21: 10 of 30 days → minimum 1000, true-up 600
    late = customer_usage(customer=customer, subscription=sub, plan=plan, metrics=metrics,
                          usages=usages, period_from=datetime(2026, 11, 21, tzinfo=UTC),
                          period_to=full[1], full_period=full)
    assert late["charges_usage"][0]["true_up_fee"] == {"amount_cents": 600}
    assert late["amount_cents"] == 1000

    # above the minimum: no true-up
    busy = customer_usage(customer=customer, subscription=sub, plan=plan, metrics=metrics,
                          usages=[agg(calls.id, agg_type="count_agg", count=45)],
                          period_from=full[0], period_to=full[1], full_period=full)
    assert busy["charges_usage"][0]["true_up_fee"] is None and busy["amount_cents"] == 4500
