"""The pipeline's answer to a store that refuses a batch for its data (a unit view, with a
store double; the real engine and broker are in tests/integration/test_poison.py)."""

from __future__ import annotations

import asyncio

from sinks.store import StoreDataError
from streams.pipeline import STORAGE_REJECTED, VALUE_OUT_OF_RANGE, Pipeline
from tests.unit.test_metrics import batch_messages, pipeline


class RefusingStore:
    """Refuses ``events`` inserts holding a refused offset; the dry run refuses likewise.
    ``blind`` refusals refuse any events insert, whatever it holds (no message is to blame)."""

    def __init__(self, refused_offsets: set[tuple[int, int]], blind: int = 0, code: int = 69):
        self.refused = refused_offsets
        self.blind = blind
        self.code = code
        self.tokens: list[str] = []
        self.deleted: list[str] = []

    def find_seen(self, keys, since):
        return {}

    def _refuses(self, spec, table) -> bool:
        if spec.table != "events":
            return False
        positions = zip(table.column("source_partition").to_pylist(),
                        table.column("source_offset").to_pylist(), strict=True)
        return any(p in self.refused for p in positions)

    def insert(self, spec, table, token):
        if spec.table == "events" and self.blind:
            self.blind -= 1
            raise StoreDataError("Code: 69. blind refusal", self.code)
        if self._refuses(spec, table):
            raise StoreDataError("Code: 69. DB::Exception: Decimal value is too big", self.code)
        self.tokens.append(token)

    def check_insert(self, spec, table):
        if self._refuses(spec, table):
            raise StoreDataError("Code: 69. DB::Exception: Decimal value is too big", self.code)

    def delete_batch_rows(self, batch_id, log_epoch, topic, ranges):
        self.deleted.append(batch_id)


def run_commit(p: Pipeline, store: RefusingStore):
    messages = batch_messages()

    async def read_ranges(ranges):
        return messages

    p._read_ranges = read_ranges  # type: ignore[method-assign]
    return asyncio.run(p.commit_batch(p.prepare(messages), commit_kafka=False))


def test_the_messages_behind_a_refusal_become_dead_letters_and_the_rest_is_written():
    store = RefusingStore({(0, 7), (1, 2)})
    p = pipeline(store)  # type: ignore[arg-type]
    committed = run_commit(p, store)
    assert sorted((d.message.partition, d.message.offset) for d in committed.dead_letters) == [
        (0, 7), (1, 2)]
    assert {d.code for d in committed.dead_letters} == {VALUE_OUT_OF_RANGE}
    assert sum(t.stored for t in committed.tallies.values()) == 151
    assert sum(t.dead_letters for t in committed.tallies.values()) == 2
    assert store.deleted == [committed.batch_id]  # what was written before went first
    rewritten = [t for t in store.tokens if ":q" in t]
    assert rewritten and all(t.startswith(f"{committed.batch_id}:q") for t in rewritten)
    assert p.metrics.quarantined._value.get() == 2


def test_another_kind_of_refusal_is_storage_rejected():
    store = RefusingStore({(0, 0)}, code=6)  # CANNOT_PARSE_TEXT
    committed = run_commit(pipeline(store), store)  # type: ignore[arg-type]
    assert [d.code for d in committed.dead_letters] == [STORAGE_REJECTED]


def test_a_refusal_no_message_explains_is_retried_with_the_same_tokens():
    """Nothing is deleted and nothing written twice: the retry reuses the batch's tokens, so
    the rows written before the refusal are not written again."""
    store = RefusingStore(set(), blind=2)
    p = pipeline(store)  # type: ignore[arg-type]
    p.config = type(p.config)(**{**p.config.__dict__, "retry_max_seconds": 0.01})
    committed = run_commit(p, store)
    assert committed.dead_letters == [] and store.deleted == []
    assert not any(":q" in t for t in store.tokens)  # a repeat of a token is ignored
    assert p.health.last_error == "Code: 69. blind refusal"  # seen as a store failure
