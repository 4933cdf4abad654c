"""Catalog changes reach every worker through the compacted catalog topic (real broker)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest

from services.catalog import CatalogService
from sinks.chdb_store import ChdbStore
from streams.catalog_topic import TOPIC_CONFIG, CatalogTopic
from streams.kafka import client_options, ensure_topics

pytestmark = pytest.mark.integration


async def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def test_changes_made_on_one_worker_reach_the_others(kafka_bootstrap, tmp_path):
    async def scenario() -> None:
        kafka = client_options(kafka_bootstrap)
        topic = f"catalog-{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka, {topic: 1}, {topic: TOPIC_CONFIG})
        clock = iter(datetime(2026, 11, 1 + i, tzinfo=UTC) for i in range(20))
        # One process may open a chdb directory: the three workers share one store, as workers
        # share a ClickHouse server. b and c never read it: they learn only from the topic.
        store = ChdbStore(tmp_path / "store")
        store.ensure_schema()
        a, b, c = (CatalogService(store, clock=lambda: next(clock)) for _ in range(3))
        topic_a, topic_b = CatalogTopic(kafka, topic, a), CatalogTopic(kafka, topic, b)
        await topic_a.start()
        await topic_b.start()
        try:
            a.apply("org", "billable_metric",
                    {"code": "gb", "aggregation_type": "sum_agg", "field_name": "v1"})
            await _until(lambda: ("org", "gb") in b.index.metrics)
            a.apply("org", "billable_metric",
                    {"code": "gb", "aggregation_type": "sum_agg", "field_name": "v2"})
            await _until(lambda: b.index.metrics[("org", "gb")].field_name == "v2")
            # b holds both versions: events keep the version in force at their time
            nov_1 = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp() * 1000)
            assert b.index.metric_at("org", "gb", nov_1).field_name == "v1"
            a.delete("org", "billable_metric", "gb")
            await _until(lambda: ("org", "gb") not in b.index.metrics)
            assert len(store.load_catalog_history()) == 3  # a wrote each version durably

            # a worker started later rebuilds every history from the compacted topic
            topic_c = CatalogTopic(kafka, topic, c)
            await topic_c.start()
            try:
                await _until(lambda: len(c.history_docs("org", "billable_metric", "gb")) == 3)
                assert ("org", "gb") not in c.index.metrics
                assert c.index.metric_at("org", "gb", nov_1).field_name == "v1"
            finally:
                await topic_c.stop()
        finally:
            await topic_a.stop()
            await topic_b.stop()
            store.close()

    asyncio.run(scenario())
