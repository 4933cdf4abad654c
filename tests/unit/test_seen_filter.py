"""The in-memory filter of stored identities, and how the pipeline uses it to cut dedup lookups."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.memory_store import MemoryStore
from sinks.store import LogPosition
from streams.batch import decode, identity_of
from streams.metrics import Metrics
from streams.pipeline import Pipeline, PipelineConfig
from streams.seen_filter import SeenFilter
from tests.unit.catalog_factory import START_MS, index, subscription
from tests.unit.test_metrics import EPOCH, NOW_S, TOPIC, message

identities = st.lists(st.binary(min_size=16, max_size=16), max_size=300)


@settings(max_examples=60, deadline=None)
@given(added=identities, capacity=st.integers(1, 64))
def test_every_added_identity_is_maybe_seen_across_growing_segments(
    added: list[bytes], capacity: int
) -> None:
    seen = SeenFilter(capacity=capacity)
    for start in range(0, len(added), 7):  # several adds, so segments fill and grow
        seen.add(added[start:start + 7])
    assert len(seen) == len(added)
    assert seen.maybe_seen(added) == added


def test_identities_never_added_are_mostly_not_seen() -> None:
    seen = SeenFilter(capacity=1 << 16)
    seen.add([os.urandom(16) for _ in range(60_000)])
    others = [os.urandom(16) for _ in range(100_000)]
    false_positives = len(seen.maybe_seen(others))
    assert false_positives < 1_500  # designed for ~0.5% at 16 bits per identity


def test_packed_and_listed_identities_are_the_same() -> None:
    keys = [os.urandom(16) for _ in range(100)]
    packed, listed = SeenFilter(), SeenFilter()
    packed.add_packed(b"".join(keys))
    listed.add(keys)
    assert packed.maybe_seen(keys) == listed.maybe_seen(keys) == keys
    assert len(packed) == len(listed) == 100


def test_identities_of_another_length_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SeenFilter().add_packed(b"x" * 17)
    with pytest.raises(ValueError, match="16 bytes"):
        SeenFilter().maybe_seen([b"x" * 15, b"y" * 17])


def test_an_empty_filter_sees_nothing() -> None:
    assert SeenFilter().maybe_seen([os.urandom(16) for _ in range(1000)]) == []
    assert SeenFilter().maybe_seen([]) == []


# --- in the pipeline --------------------------------------------------------------------------


def dedup_index(stored: dict[bytes, tuple[LogPosition, int]]) -> MemoryStore:
    """A store whose dedup index holds ``stored`` (identity → position, seen-at ms)."""
    store = MemoryStore()
    store.seed_dedup_keys(stored)
    return store


def pipeline(store: MemoryStore) -> Pipeline:
    return Pipeline(
        config=PipelineConfig(topic=TOPIC, dead_letter_topic="dead", group_id="g"),
        store=store, kafka_options={}, log_epoch=EPOCH,
        catalog=lambda: index(subscriptions=[subscription()]),
        clock=lambda: NOW_S, metrics=Metrics(),
    )


def messages(partition: int, offsets: range) -> list:
    kafka_ms = int(NOW_S * 1000) - 2000
    return [message(partition, o, event_ms=START_MS + 3_600_000, kafka_ms=kafka_ms)
            for o in offsets]


def test_only_identities_the_filter_may_hold_are_looked_up_and_duplicates_are_still_found():
    earlier = messages(0, range(0, 20))  # stored by an earlier worker
    store = dedup_index({
        identity_of(_event(m)): (LogPosition(EPOCH, TOPIC, 9, m.offset), m.timestamp)
        for m in earlier
    })
    p = pipeline(store)
    asyncio.run(p.recovery.load_seen_filter())
    assert len(p.seen_filter) == 20

    # Batch 1: the 20 stored identities come again, with 500 new ones.
    again = [message(1, i, event_ms=START_MS + 3_600_000, kafka_ms=m.timestamp)
             for i, m in enumerate(earlier)]
    for m, old in zip(again, earlier, strict=True):
        m.value = old.value
    fresh = messages(1, range(20, 520))
    first = p.prepare(again + fresh)
    tally = first.tallies[1]
    assert (tally.duplicates, tally.stored) == (20, 500)
    asked = set(store.lookups[-1])
    assert {identity_of(_event(m)) for m in earlier} <= asked
    assert len(asked) < 40  # the 20 duplicates and a few false positives, not 520
    registry = p.metrics.registry
    assert registry.get_sample_value("meterline_dedup_lookup_keys_total") == len(asked)
    assert registry.get_sample_value("meterline_dedup_filter_identities") == 520

    # Batch 1 is written; batch 2 re-sends its new events: all are duplicates, found through
    # the identities the filter took from batch 1.
    asyncio.run(p.commit_batch(first, commit_kafka=False))
    resent = [message(2, i, event_ms=0, kafka_ms=m.timestamp) for i, m in enumerate(fresh)]
    for m, old in zip(resent, fresh, strict=True):
        m.value = old.value
    second = p.prepare(resent)
    assert second.tallies[2].duplicates == 500
    assert second.tallies[2].stored == 0


def test_a_backfill_older_than_the_filter_looks_up_every_identity():
    day_ms = 86_400_000
    now_ms = int(NOW_S * 1000)
    # Stored 40 days ago: outside the 35-day window (plus a day) the filter is loaded with.
    old = message(0, 0, event_ms=START_MS + 3_600_000, kafka_ms=now_ms - 40 * day_ms)
    store = dedup_index(
        {identity_of(_event(old)): (LogPosition(EPOCH, TOPIC, 0, 0), old.timestamp)}
    )
    p = pipeline(store)
    asyncio.run(p.recovery.load_seen_filter())
    assert len(p.seen_filter) == 0

    # A backfill re-sends it with a Kafka timestamp 38 days old: the batch's window reaches 73
    # days back, further than the filter, so the store is asked and finds the copy.
    copy = message(1, 0, event_ms=START_MS + 3_600_000, kafka_ms=now_ms - 38 * day_ms)
    copy.value = old.value
    fresh = messages(1, range(1, 11))
    batch = p.prepare([copy, *fresh])
    assert (batch.tallies[1].duplicates, batch.tallies[1].stored) == (1, 10)
    assert len(store.lookups[-1]) == 11


def test_without_a_loaded_filter_every_identity_is_looked_up():
    store = dedup_index({})
    p = pipeline(store)
    p.prepare(messages(0, range(50)))
    assert len(store.lookups[-1]) == 50


def _event(m):
    return decode(m)
