"""What the pipeline records in its Prometheus registry, without Kafka (a fake store and consumer).

The end-to-end view through a real Prometheus is tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import asyncio

import orjson

from services.catalog import CatalogService
from sinks.memory_store import MemoryStore
from sinks.store import CatalogDoc
from streams.batch import RawRecord, process_batch
from streams.fetcher import log_end
from streams.metrics import FRESHNESS_SAMPLE_EVERY, Metrics
from streams.pipeline import Pipeline, PipelineConfig
from tests.unit.catalog_factory import HOUR_MS, ORG, START_MS, index, subscription

TOPIC = "events-raw"
EPOCH = "epoch_1"
NOW_S = START_MS / 1000 + 30 * 86_400  # the injected clock: 30 days after the start


def message(partition: int, offset: int, *, event_ms: int, kafka_ms: int) -> RawRecord:
    body = {
        "organization_id": ORG, "external_subscription_id": "sub_ext_1", "code": "api",
        "transaction_id": f"tx-{partition}-{offset}", "timestamp": event_ms / 1000,
        "properties": {"amount": 1},
    }
    return RawRecord(TOPIC, partition, offset, kafka_ms, orjson.dumps(body))


class FakeFetcher:
    """The broker's end offsets, as the fetcher reads them."""

    def __init__(self, end_offsets: dict[int, int]):
        self._end_offsets = end_offsets

    def assignment(self):
        return set(self._end_offsets)

    def log_offsets(self, partitions=None):
        return {p: (0, self._end_offsets[p]) for p in partitions or self._end_offsets}


def pipeline(store: MemoryStore | None = None) -> Pipeline:
    return Pipeline(
        config=PipelineConfig(
            topic=TOPIC, dead_letter_topic="dead", group_id="g", retry_initial_seconds=0.001,
        ),
        store=store or MemoryStore(),  # type: ignore[arg-type]
        kafka_options={},
        log_epoch=EPOCH,
        catalog=lambda: index(subscriptions=[subscription()]),
        clock=lambda: NOW_S,
        metrics=Metrics(),
    )


def sample(p: Pipeline, name: str, **labels: str) -> float | None:
    return p.metrics.registry.get_sample_value(name, labels)


def batch_messages() -> list[RawRecord]:
    """150 messages on partition 0, 3 on partition 1, produced 2 s before the clock."""
    kafka_ms = int(NOW_S * 1000) - 2000
    first = START_MS + HOUR_MS
    return [
        *(message(0, o, event_ms=first + o * 1000, kafka_ms=kafka_ms) for o in range(150)),
        *(message(1, o, event_ms=first - o * 1000, kafka_ms=kafka_ms) for o in range(3)),
    ]


def test_process_batch_reports_the_time_of_each_step():
    timings: dict[str, float] = {}
    result = process_batch(
        batch_messages(), index=index(subscriptions=[subscription()]), log_epoch=EPOCH,
        find_seen=lambda keys, since: {}, dedup_window_days=35, timings=timings,
    )
    assert sum(t.stored for t in result.tallies.values()) == 153
    assert set(timings) == {"parse", "dedup", "enrich", "rollup"}
    assert all(seconds >= 0 for seconds in timings.values())


def test_a_committed_batch_records_counts_steps_freshness_and_watermarks():
    p = pipeline()
    asyncio.run(p.commit_batch(p.prepare(batch_messages()), commit_kafka=False))

    assert sample(p, "meterline_messages_total", topic=TOPIC, partition="0",
                  outcome="stored") == 150
    for step in ("parse", "dedup", "enrich", "rollup", "insert"):
        assert sample(p, "meterline_step_seconds_count", step=step) == 1, step
    # one observation per FRESHNESS_SAMPLE_EVERY messages of each partition, the first included
    expected = -(-150 // FRESHNESS_SAMPLE_EVERY) + 1
    assert sample(p, "meterline_freshness_seconds_count") == expected
    assert sample(p, "meterline_freshness_seconds_sum") == expected * 2.0
    assert sample(p, "meterline_freshness_seconds_bucket", le="2.0") == expected
    assert sample(p, "meterline_freshness_seconds_bucket", le="1.5") == 0
    # the newest event timestamp per partition
    first_s = (START_MS + HOUR_MS) / 1000
    assert sample(p, "meterline_event_time_watermark_seconds", topic=TOPIC,
                  partition="0") == first_s + 149
    assert sample(p, "meterline_event_time_watermark_seconds", topic=TOPIC,
                  partition="1") == first_s
    assert sample(p, "meterline_last_batch_timestamp_seconds") == NOW_S
    assert sample(p, "meterline_insert_rows_total", table="events") == 153


def test_the_watermark_never_goes_back():
    p = pipeline()
    kafka_ms = int(NOW_S * 1000)
    newer = [message(0, 0, event_ms=START_MS + 2 * HOUR_MS, kafka_ms=kafka_ms)]
    older = [message(0, 1, event_ms=START_MS + HOUR_MS, kafka_ms=kafka_ms)]
    asyncio.run(p.commit_batch(p.prepare(newer), commit_kafka=False))
    asyncio.run(p.commit_batch(p.prepare(older), commit_kafka=False))
    assert sample(p, "meterline_event_time_watermark_seconds", topic=TOPIC,
                  partition="0") == (START_MS + 2 * HOUR_MS) / 1000


def test_store_errors_and_retries_are_counted():
    p = pipeline(MemoryStore(failures=2))
    asyncio.run(p.commit_batch(p.prepare(batch_messages()[:5]), commit_kafka=False))
    assert sample(p, "meterline_store_errors_total", operation="insert") == 2
    assert sample(p, "meterline_store_retries_total", operation="insert") == 2
    assert p.stats.stored == 5


def test_lag_per_partition_and_rebalances():
    p = pipeline()
    p._fetcher = FakeFetcher({0: 160, 1: 9, 2: 7})  # type: ignore[assignment]
    p.observer.committed_next.update({0: 150, 2: 7})  # partition 1: assigned, not yet seeked
    asyncio.run(p.refresh_progress())
    assert sample(p, "meterline_consumer_lag", topic=TOPIC, partition="0") == 10
    assert sample(p, "meterline_consumer_lag", topic=TOPIC, partition="1") is None  # unknown
    assert sample(p, "meterline_consumer_lag", topic=TOPIC, partition="2") == 0

    asyncio.run(p.commit_batch(p.prepare(batch_messages()), commit_kafka=False))
    p._fetcher = None  # on_revoked flushes nothing here; no consumer needed
    asyncio.run(p.on_revoked({0}))
    assert sample(p, "meterline_rebalances_total", event="revoked") == 1
    # another worker owns partition 0 now: this one stops reporting it
    assert sample(p, "meterline_consumer_lag", topic=TOPIC, partition="0") is None
    assert sample(p, "meterline_event_time_watermark_seconds", topic=TOPIC,
                  partition="0") is None
    assert sample(p, "meterline_event_time_watermark_seconds", topic=TOPIC,
                  partition="1") is not None


def test_catalog_remembers_when_it_last_changed():
    catalog = CatalogService(store=None)  # type: ignore[arg-type]  # merge never touches it
    assert catalog.changed_at_ms == 0
    body = orjson.dumps({"code": "api", "aggregation_type": "count_agg"}).decode()
    catalog.merge([
        CatalogDoc(ORG, "billable_metric", "api", body, version=2, effective_at_ms=5_000),
        CatalogDoc(ORG, "billable_metric", "api", body, version=1, effective_at_ms=3_000),
    ])
    assert catalog.changed_at_ms == 5_000


def test_names_are_series_names():
    names = Metrics().names()
    assert "meterline_messages_total" in names and "meterline_messages" not in names
    assert "meterline_freshness_seconds_bucket" in names
    assert "meterline_freshness_seconds" not in names
    assert "meterline_consumer_lag" in names


def test_lag_and_stall_are_measured_without_any_commit():
    """Issue 16, finding 3: the lag gauge stayed 0 during a stall (it was updated only after a
    commit). Now it comes from the broker on a timer, and a stall shows."""
    now = [1000.0]
    p = pipeline()
    p.health.clock = lambda: now[0]
    p.health.stall_seconds = 60
    p._fetcher = FakeFetcher({0: 50, 1: 0})  # type: ignore[assignment]
    p.observer.committed_next.update({0: 0, 1: 0})
    p.health.assigned([0, 1])
    asyncio.run(p.refresh_progress())
    assert sample(p, "meterline_consumer_lag", topic=TOPIC, partition="0") == 50
    assert sample(p, "meterline_pipeline_stalled") == 0
    now[0] += 61  # no batch of partition 0 commits for a minute, while it has work
    p._fetcher = FakeFetcher({0: 80, 1: 0})  # type: ignore[assignment]
    asyncio.run(p.refresh_progress())
    assert sample(p, "meterline_consumer_lag", topic=TOPIC, partition="0") == 80
    assert sample(p, "meterline_pipeline_stalled") == 1
    assert p.health.stalled_partitions() == [0]  # partition 1 has nothing to do
    assert sample(p, "meterline_seconds_since_commit", topic=TOPIC, partition="0") == 61


def test_the_log_end_is_the_larger_of_list_offsets_and_the_fetch_high_watermark():
    """Tansu answers ListOffsets with the last record batch's base offset + 1 (measured: 2,004
    for 4,000 messages in 4 partitions); its fetch high watermark is right."""
    assert log_end(501, 1000) == 1000
    assert log_end(7, None) == 7  # no fetch yet
    assert log_end(2004, 2004) == 2004
