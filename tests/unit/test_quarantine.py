"""The pipeline's answer to a store that refuses a batch for its data (a unit view, with the
in-memory store; the real engine and broker are in tests/integration/test_poison.py)."""

from __future__ import annotations

import asyncio
import dataclasses

from sinks.memory_store import MemoryStore
from sinks.store import StoreDataError
from streams.pipeline import STORAGE_REJECTED, VALUE_OUT_OF_RANGE, Pipeline
from tests.unit.test_metrics import batch_messages, pipeline


def refusing(*positions: tuple[int, int]) -> MemoryStore:
    """A store refusing the events rows of these (partition, offset) positions."""
    return MemoryStore(refuse=lambda part, row: part == "events" and (
        row["source_partition"], row["source_offset"]) in positions)


def run_commit(p: Pipeline):
    messages = batch_messages()

    async def read_ranges(ranges):
        return messages

    p._read_ranges = read_ranges  # type: ignore[method-assign]
    return asyncio.run(p.commit_batch(p.prepare(messages), commit_kafka=False))


def test_the_messages_behind_a_refusal_become_dead_letters_and_the_rest_is_written():
    store = refusing((0, 7), (1, 2))
    p = pipeline(store)
    committed = run_commit(p)
    assert sorted((d.message.partition, d.message.offset) for d in committed.dead_letters) == [
        (0, 7), (1, 2)]
    assert {d.code for d in committed.dead_letters} == {VALUE_OUT_OF_RANGE}
    assert sum(t.stored for t in committed.tallies.values()) == 151
    assert sum(t.dead_letters for t in committed.tallies.values()) == 2
    assert store.deleted == [committed.batch_id]  # what was written before went first
    rewritten = [token for _, token in store.writes if ":q" in token]
    assert rewritten and all(t.startswith(f"{committed.batch_id}:q") for t in rewritten)
    assert len(store.rows["events"]) == 151  # the first attempt's rows are gone
    assert len(store.rows["keys"]) == 151
    assert p.metrics.quarantined._value.get() == 2


def test_another_kind_of_refusal_is_storage_rejected():
    store = refusing((0, 0))
    original = store.check_part

    def refuse_as_unparsable(batch, part):
        try:
            original(batch, part)
        except Exception as exc:
            raise type(exc)(str(exc), 6) from None  # CANNOT_PARSE_TEXT

    store.check_part = refuse_as_unparsable  # type: ignore[method-assign]
    committed = run_commit(pipeline(store))
    assert [d.code for d in committed.dead_letters] == [STORAGE_REJECTED]


def test_a_refusal_no_message_explains_is_retried_with_the_same_tokens():
    """Nothing is deleted and nothing written twice: the retry reuses the batch's tokens, so
    the rows written before the refusal are not written again."""
    store = MemoryStore()
    refusals = [2]
    write_part = store.write_part

    def refuse_twice(batch, part, token):
        if part == "events" and refusals[0]:
            refusals[0] -= 1
            raise StoreDataError("Code: 69. blind refusal", 69)
        write_part(batch, part, token)

    store.write_part = refuse_twice  # type: ignore[method-assign]
    p = pipeline(store)
    p.config = dataclasses.replace(p.config, retry_max_seconds=0.01)
    p.retry.max_seconds = 0.01
    committed = run_commit(p)
    assert committed.dead_letters == [] and store.deleted == []
    assert not any(":q" in token for _, token in store.writes)
    assert len(store.rows["keys"]) == 153  # once, though written before each refusal
    assert p.health.last_error == "Code: 69. blind refusal"  # seen as a store failure
