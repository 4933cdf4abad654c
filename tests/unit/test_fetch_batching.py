"""How fetched chunks become batches (streams.pipeline with streams.fetcher's chunks), without
Kafka: chunks of an older assignment are dropped, no offset is taken twice, and a batch never
holds more than ``batch_max_events`` (the rest stays pending, in order)."""

from __future__ import annotations

import asyncio

from sinks.memory_store import MemoryStore
from streams.batch import RawRecord
from streams.fetcher import Chunk, records_of
from streams.pipeline import Pipeline, PipelineConfig
from tests.unit.catalog_factory import index, subscription

TOPIC = "raw"


def pipeline(batch_max_events: int = 100) -> Pipeline:
    p = Pipeline(
        config=PipelineConfig(topic=TOPIC, dead_letter_topic="dead", group_id="g",
                              batch_max_events=batch_max_events),
        store=MemoryStore(),  # type: ignore[arg-type]
        kafka_options={}, log_epoch="e", catalog=lambda: index(subscriptions=[subscription()]),
    )
    asyncio.run(p.on_assigned({0, 1}))  # both partitions resume at 0 (nothing committed)
    return p


def records(partition: int, offsets: range) -> list[RawRecord]:
    return [RawRecord(TOPIC, partition, o, 0, b"{}") for o in offsets]


def pending(p: Pipeline) -> dict[int, list[int]]:
    return {part: [r.offset for r in rs] for part, rs in p._pending.items() if rs}


def test_chunks_of_an_older_assignment_are_dropped():
    p = pipeline()
    p._generation = 3
    p._add_pending(Chunk(2, records(0, range(5))))  # fetched before the last rebalance
    assert pending(p) == {}
    p._add_pending(Chunk(3, records(0, range(5))))
    assert pending(p) == {0: [0, 1, 2, 3, 4]}


def test_no_offset_is_taken_twice_and_unassigned_partitions_are_ignored():
    p = pipeline()
    p._add_pending(Chunk(0, records(0, range(3)) + records(1, range(2)) + records(7, range(2))))
    p._add_pending(Chunk(0, records(0, range(1, 6))))  # overlaps: re-fetched 1 and 2
    assert pending(p) == {0: [0, 1, 2, 3, 4, 5], 1: [0, 1]}


def test_a_batch_is_cut_at_its_size_and_the_rest_stays_pending_in_order():
    p = pipeline(batch_max_events=5)
    p._add_pending(Chunk(0, records(1, range(4)) + records(0, range(3))))
    first = p._take_pending()
    assert [(m.partition, m.offset) for m in first] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert pending(p) == {1: [2, 3]}
    assert [(m.partition, m.offset) for m in p._take_pending()] == [(1, 2), (1, 3)]
    assert pending(p) == {}


class _Message:
    def __init__(self, partition: int, offset: int, error: object = None):
        self._p, self._o, self._e = partition, offset, error

    def error(self) -> object:
        return self._e

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000 + self._o)

    def value(self) -> bytes:
        return b"v%d" % self._o


def test_consumed_messages_become_records_and_error_events_are_logged_not_kept():
    logged: list[object] = []
    got = records_of([_Message(0, 5), _Message(0, -1, error="partition EOF"), _Message(1, 6)],
                     logged.append)  # type: ignore[list-item, arg-type]
    assert [(r.partition, r.offset, r.timestamp, r.value) for r in got] == [
        (0, 5, 1_700_000_000_005, b"v5"), (1, 6, 1_700_000_000_006, b"v6")]
    assert logged == ["partition EOF"]
