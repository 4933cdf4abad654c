"""Prorated charges on recurring sums, read from the stored daily pre-aggregates."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pytest

from aggregation.units import prorated_sum
from enrichment.catalog_index import CatalogIndex
from schemas.catalog import (
    Catalog,
    parse_billable_metric,
    parse_customer,
    parse_plan,
    parse_subscription,
)
from services.usage import UsageService
from sinks.chdb_store import ChdbStore
from streams.batch import RawRecord
from streams.pipeline import Pipeline, PipelineConfig

pytestmark = pytest.mark.integration
ORG = "org"


def test_prorated_sum_by_hand():
    # carried 10 for all 30 days; +30 on the 21st counts 10 days; -6 on the 30th counts 1 day
    units = prorated_sum(Decimal(10), [(date(2026, 11, 21), Decimal(30)),
                                       (date(2026, 11, 30), Decimal(-6))],
                         date(2026, 11, 1), date(2026, 11, 30), 30)
    assert units == Decimal(10) + Decimal(10) - Decimal("0.2")


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_prorated_recurring_sum_in_current_usage(tmp_path):
    store = ChdbStore(tmp_path / "chdb")
    store.ensure_schema()
    charges = [
        {"billable_metric_code": "seats", "charge_model": "standard", "prorated": True,
         "properties": {"amount": "3"}},
    ]
    index = CatalogIndex(Catalog(
        metrics=(parse_billable_metric({"code": "seats", "aggregation_type": "sum_agg",
                                        "field_name": "n", "recurring": True}, ORG),),
        plans=(parse_plan({"code": "p", "interval": "monthly", "amount_currency": "EUR",
                           "charges": charges}, ORG),),
        customers=(parse_customer({"external_id": "c", "timezone": "Asia/Tokyo"}, ORG),),
        subscriptions=(parse_subscription({"external_id": "s", "external_customer_id": "c",
                                           "plan_code": "p",
                                           "started_at": "2026-01-01T00:00:00Z"}, ORG,
                                          now=datetime.now(UTC)),),
    ))
    events = [  # (timestamp, seats): October carries 10 seats into November (Tokyo time)
        (ms(2026, 10, 5), 10),
        (ms(2026, 11, 20, 16), 30),  # Nov 21 01:00 in Tokyo: counts Nov 21..30 = 10 days
    ]
    messages = [
        RawRecord("raw", 0, i, ts, orjson.dumps({
            "organization_id": ORG, "transaction_id": f"t{i}", "external_subscription_id": "s",
            "code": "seats", "timestamp": ts / 1000, "properties": {"n": n}}))
        for i, (ts, n) in enumerate(events)
    ]
    pipeline = Pipeline(config=PipelineConfig(topic="raw", dead_letter_topic="d", group_id="g"),
                        store=store, kafka_options={}, log_epoch="e", catalog=lambda: index)
    asyncio.run(pipeline.commit_batch(pipeline.prepare(messages), commit_kafka=False))

    usage = UsageService(store, lambda: index).usage(
        ORG, "s", at=datetime(2026, 11, 25, tzinfo=UTC))
    (charge,) = usage["charges_usage"]
    # 10 seats × 30/30 + 30 seats × 10/30 = 20 seats × 3.00 EUR = 60.00 EUR
    assert Decimal(charge["units"]) == 20
    assert usage["amount_cents"] == 6000
    assert usage["from_datetime"] == "2026-10-31T15:00:00Z"  # Nov 1 00:00 in Tokyo
    store.close()
