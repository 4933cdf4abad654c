"""Property: usage read from the stored pre-aggregates equals usage computed from raw events.

Random events go through the real write path (process_batch + Pipeline.commit_batch into the
chdb engine, in random batch splits), then the usage service reads them back. The oracle is
``tests.reference``, which walks the raw events one by one.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation.units import Period
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
from services.usage import UsageService
from sinks.chdb_store import ChdbStore
from streams.batch import RawRecord
from streams.pipeline import Pipeline, PipelineConfig
from tests.reference import reference_event_values, reference_units

pytestmark = pytest.mark.integration

ORG = "org"
NOW = datetime(2026, 11, 20, tzinfo=UTC)
PERIOD_FROM = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
PERIOD_TO = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
TYPES = [
    ("count_agg", False), ("sum_agg", False), ("sum_agg", True), ("max_agg", False),
    ("latest_agg", False), ("unique_count_agg", False), ("unique_count_agg", True),
    ("weighted_sum_agg", False), ("weighted_sum_agg", True),
]
_subscription_ids = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = ChdbStore(tmp_path_factory.mktemp("property") / "chdb")
    store.ensure_schema()
    yield store
    store.close()


def build_index(agg: str, recurring: bool, sub_external_id: str) -> CatalogIndex:
    metric = {"code": "m", "aggregation_type": agg, "recurring": recurring}
    if agg != "count_agg":
        metric["field_name"] = "v"
    plan = parse_plan({
        "code": "p", "interval": "monthly", "amount_currency": "EUR",
        "charges": [
            {"billable_metric_code": "m", "charge_model": "standard",
             "properties": {"amount": "1", "pricing_group_keys": ["g"]},
             "filters": [{"values": {"f": ["a"]}, "properties": {"amount": "2"}}]},
            {"billable_metric_code": "m", "charge_model": "percentage",
             "properties": {"rate": "1", "per_transaction_max_amount": "5"}},
        ],
    }, ORG)
    return CatalogIndex(Catalog(
        metrics=(parse_billable_metric(metric, ORG),),
        plans=(plan,),
        customers=(parse_customer({"external_id": "c"}, ORG),),
        subscriptions=(parse_subscription(
            {"external_id": sub_external_id, "external_customer_id": "c", "plan_code": "p",
             "started_at": "2026-01-01T00:00:00Z"}, ORG, now=NOW),),
    ))


values = st.decimals(min_value=-50, max_value=50, places=3, allow_nan=False)
events = st.lists(
    st.tuples(
        # from a month before the period to two weeks after it, at millisecond resolution
        st.integers(PERIOD_FROM - 31 * 86_400_000, PERIOD_TO + 14 * 86_400_000),
        values,
        st.sampled_from(["a", "b", None]),  # filter key f
        st.sampled_from(["x", "y", None]),  # group key g
        st.sampled_from(["u1", "u2", "u3"]),  # unique value
        st.sampled_from(["add", "add", "remove"]),
    ),
    min_size=1,
    max_size=40,
)


@pytest.mark.parametrize(("agg", "recurring"), TYPES, ids=[f"{a}{'-rec' if r else ''}"
                                                            for a, r in TYPES])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=events, cuts=st.lists(st.integers(0, 40), max_size=3))
def test_stored_usage_equals_usage_of_raw_events(store, agg, recurring, data, cuts):
    sub_external_id = f"s{next(_subscription_ids)}"
    index = build_index(agg, recurring, sub_external_id)
    messages = []
    for offset, (ts, value, f, g, unique_value, op) in enumerate(data):
        properties: dict = {"operation_type": op}
        properties["v"] = unique_value if agg == "unique_count_agg" else str(value)
        if f:
            properties["f"] = f
        if g:
            properties["g"] = g
        body = {"organization_id": ORG, "transaction_id": f"t{offset}",
                "external_subscription_id": sub_external_id, "code": "m",
                "timestamp": ts / 1000, "properties": properties}
        messages.append(RawRecord("raw", 0, offset, ts, orjson.dumps(body)))

    pipeline = Pipeline(
        config=PipelineConfig(topic="raw", dead_letter_topic="dead", group_id="g"),
        store=store, kafka_options={}, log_epoch=sub_external_id, catalog=lambda: index,
    )

    async def write_in_batches() -> None:
        bounds = sorted({0, len(messages), *(c for c in cuts if c < len(messages))})
        for start, end in itertools.pairwise(bounds):
            await pipeline.commit_batch(pipeline.prepare(messages[start:end]), commit_kafka=False)

    asyncio.run(write_in_batches())

    sub = index.subscription_by_id(ORG, sub_external_id)
    plan = index.plans[(ORG, "p")]
    metric = index.metrics[(ORG, "m")]
    period = Period(PERIOD_FROM, PERIOD_TO, 30)
    service = UsageService(store, lambda: index)
    stored = {
        (u.charge_id, u.charge_filter_id, u.grouped_by): u
        for u in service.fee_usages(ORG, sub.id, plan, {"m": metric}, PERIOD_FROM, PERIOD_TO,
                                    period)
    }

    rows = []
    for message in messages:
        event = parse_event(orjson.loads(message.value), now_ms=message.timestamp)
        rows.extend(enrich(event, index))  # type: ignore[arg-type]
    expected = reference_units(
        rows, aggregation_type=agg, recurring=recurring, period_from_ms=PERIOD_FROM,
        period_to_ms=PERIOD_TO, period_days=30,
    )
    expected = {k: v for k, v in expected.items() if k[0]}  # priced rows only
    assert {k: u.units for k, u in stored.items()} == expected
    if agg != "unique_count_agg":
        percentage = plan.charges[1].id
        expected_values = {
            k: v for k, v in reference_event_values(rows, PERIOD_FROM, PERIOD_TO).items()
            if k[0] == percentage
        }
        assert {
            k: u.event_values for k, u in stored.items() if k[0] == percentage and u.event_values
        } == {k: v for k, v in expected_values.items() if k in stored}
    assert all(isinstance(u.units, Decimal) for u in stored.values())
