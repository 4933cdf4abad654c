"""The in-memory store unit tests use (sinks.memory_store) answers the pipeline's questions
as the real engine (chdb) does, for the same writes."""

from __future__ import annotations

import pytest

from sinks.batch_tables import BATCH_PARTS, encode_batch
from sinks.chdb_store import ChdbStore
from sinks.memory_store import MemoryStore
from streams.batch import PartitionTally, identity_of, process_batch
from tests.unit.catalog_factory import index, subscription
from tests.unit.test_batch import EPOCH, msg, payload

pytestmark = pytest.mark.integration


def scenario(store) -> dict:
    """Write one batch, begin another, and ask what the pipeline asks."""
    messages = [msg(i, payload(f"t{i}")) for i in range(5)] + [
        msg(0, payload("u0"), partition=1)]
    result = process_batch(messages, index=index(subscriptions=[subscription()]),
                           log_epoch=EPOCH, find_seen=lambda k, s: {}, dedup_window_days=35)
    encoded = encode_batch(result, EPOCH, "B1", 1_000)
    store.write_marker("B1", EPOCH, "raw", "begin", result.tallies, 1_000)
    for part in BATCH_PARTS:
        store.write_part(encoded, part, f"B1:{part}")
        store.write_part(encoded, part, f"B1:{part}")  # a replay: ignored
    store.write_marker("B1", EPOCH, "raw", "done", result.tallies, 1_000)
    open_one = {2: PartitionTally(10, 19, consumed=10)}
    store.write_marker("B2", "old-epoch", "raw", "begin", open_one, 2_000)
    identities = [identity_of(e) for e in (r.event for r in result.rows)]
    answers = {
        "seen": sorted((k, tuple(v)) for k, v in store.find_seen(identities, 0).items()),
        "identities": b"".join(store.stored_identities(0)),
        "open": [(b.batch_id, b.log_epoch, b.partition, b.from_offset, b.to_offset, b.consumed)
                 for b in store.open_batches("raw")],
        "committed": store.committed_offsets(EPOCH, "raw"),
    }
    store.roll_back_batch("raw", store.open_batches("raw"), "gone")
    store.delete_batch_rows("B1", EPOCH, "raw", {0: (0, 4), 1: (0, 0)})
    answers["after"] = (store.open_batches("raw"), store.find_seen(identities, 0),
                        [(r["batch_id"], r["consumed"]) for r in store.rolled_back_batches()])
    return answers


def test_the_memory_store_answers_as_chdb(tmp_path):
    real = ChdbStore(tmp_path / "chdb")
    try:
        real.ensure_schema()
        expected = scenario(real)
    finally:
        real.close()
    got = scenario(MemoryStore())
    assert sorted(got["identities"][i:i + 16] for i in range(0, len(got["identities"]), 16)) \
        == sorted(expected["identities"][i:i + 16]
                  for i in range(0, len(expected["identities"]), 16))
    for key in ("seen", "open", "committed", "after"):
        assert got[key] == expected[key], key
