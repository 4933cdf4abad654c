"""A reproducible workload for exactness tests: events with duplicates, and the exact totals
the pipeline must end with (computed from the unique events only)."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import orjson

ORG = "default"


def catalog(subscriptions: int) -> dict:
    """Two metrics (count, sum with a pricing group) on one plan, priced 1 per unit."""
    return {
        "billable_metrics": [
            {"code": "calls", "aggregation_type": "count_agg"},
            {"code": "gb", "aggregation_type": "sum_agg", "field_name": "gb"},
        ],
        "plans": [{"code": "p", "interval": "monthly", "amount_currency": "EUR", "charges": [
            {"billable_metric_code": "calls", "charge_model": "standard",
             "properties": {"amount": "1"}},
            {"billable_metric_code": "gb", "charge_model": "standard",
             "properties": {"amount": "1", "pricing_group_keys": ["region"]}},
        ]}],
        "customers": [{"external_id": f"c{i}"} for i in range(subscriptions)],
        "subscriptions": [
            {"external_id": f"s{i}", "external_customer_id": f"c{i}", "plan_code": "p",
             "started_at": "2026-01-01T00:00:00Z"}
            for i in range(subscriptions)
        ],
    }


@dataclass
class Expected:
    """Totals over unique events, per subscription."""

    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    gb: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    gb_by_region: dict[tuple[str, str], Decimal] = field(
        default_factory=lambda: defaultdict(Decimal)
    )
    unique: int = 0
    duplicates: int = 0


@dataclass
class Workload:
    """Messages (key, value) to produce, and what they must add up to."""

    messages: list[tuple[bytes, bytes]]
    expected: Expected


def make_workload(
    count: int, *, subscriptions: int = 100, duplicate_ratio: float = 0.05, seed: int = 7,
    tx_prefix: str = "t",
) -> Workload:
    """``count`` messages; ``duplicate_ratio`` of them re-send an earlier transaction id
    (with a new timestamp, as a retrying producer would)."""
    rng = random.Random(seed)
    now = time.time()
    month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0,
                                            microsecond=0).timestamp()
    earliest = max(month_start + 1, now - 2 * 86_400)
    expected = Expected()
    sent: list[dict] = []
    messages = []
    for i in range(count):
        if sent and rng.random() < duplicate_ratio:
            body = {**rng.choice(sent), "timestamp": rng.uniform(earliest, now)}
            expected.duplicates += 1
        else:
            sub = f"s{rng.randrange(subscriptions)}"
            body = {"organization_id": ORG, "transaction_id": f"{tx_prefix}{i}",
                    "external_subscription_id": sub, "timestamp": rng.uniform(earliest, now)}
            if rng.random() < 0.5:
                body["code"] = "calls"
                expected.calls[sub] += 1
            else:
                gb = Decimal(rng.randint(1, 100_000)) / 1000
                region = rng.choice(["eu", "us"])
                body.update(code="gb", properties={"gb": str(gb), "region": region})
                expected.gb[sub] += gb
                expected.gb_by_region[(sub, region)] += gb
            expected.unique += 1
            sent.append(body)
        key = f"{ORG}-{body['external_subscription_id']}".encode()
        messages.append((key, orjson.dumps(body)))
    return Workload(messages, expected)


def usage_over_http(client) -> Callable[[int], dict]:
    """Current usage of subscription ``s<i>`` through the HTTP API."""
    return lambda i: client.get(
        f"/api/v1/customers/c{i}/current_usage?external_subscription_id=s{i}"
    )["customer_usage"]


def check_usage(usage_of: Callable[[int], dict], expected: Expected, subscriptions: int) -> None:
    """Every subscription's current usage equals the expected totals, exactly."""
    for i in range(subscriptions):
        sub = f"s{i}"
        usage = usage_of(i)
        charges = {c["billable_metric"]["code"]: c for c in usage["charges_usage"]}
        assert charges["calls"]["events_count"] == expected.calls.get(sub, 0), sub
        assert Decimal(charges["gb"]["units"]) == expected.gb.get(sub, Decimal(0)), sub
        regions = {g["grouped_by"]["region"]: Decimal(g["units"])
                   for g in charges["gb"]["grouped_usage"]}
        for region in ("eu", "us"):
            assert regions.get(region, Decimal(0)) == expected.gb_by_region.get(
                (sub, region), Decimal(0)), (sub, region)
