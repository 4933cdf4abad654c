"""One contract, every store backend (ENGINEERING.md, examples 3, 6 and 7).

The same test bodies run against chdb (always) and a ClickHouse server (when
``METERLINE_TEST_CLICKHOUSE_URL`` is set, e.g. ``http://default:@localhost:8123``; each test then
gets its own database, dropped at teardown).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from aggregation.rollup import BUCKET_MS, RollupKey, RollupState, rollup
from enrichment.enricher import EnrichedRow
from schemas.event import UsageEvent
from sinks import ddl, migrations, wire
from sinks.chdb_store import ChdbStore
from sinks.sql_store import SqlStore
from sinks.store import (
    VALUE_RANGE_ERROR_CODES,
    ApiKeyRecord,
    CatalogDoc,
    LogPosition,
    Organization,
    PartitionCounts,
    StoreDataError,
    StoreError,
)
from streams.batch import DeadLetter, PartitionTally, RawRecord, identity_of

pytestmark = pytest.mark.integration

CLICKHOUSE_URL = os.environ.get("METERLINE_TEST_CLICKHOUSE_URL", "")
BACKENDS = ["chdb"] + (["clickhouse"] if CLICKHOUSE_URL else [])
REPO_ROOT = Path(__file__).resolve().parents[2]

ORG = "org_1"
EXT_SUB = "ext_sub_1"
SUB = "sub_1"
T0 = 1_699_999_200_000  # a 15-minute bucket boundary (2023-11-14T22:00:00Z)
assert T0 % BUCKET_MS == 0


# --- backends ----------------------------------------------------------------------------------


@dataclass
class Backend:
    """How to open a store of one backend on this test's data (again, after a close)."""

    name: str
    open: Callable[[], SqlStore]
    data_dir: Path | None = None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "chdb":
        data_dir = tmp_path / "chdb"
        return Backend("chdb", lambda: ChdbStore(data_dir, database="meterline"), data_dir)
    from sinks.clickhouse_store import ClickHouseStore

    database = f"contract_{uuid.uuid4().hex[:12]}"
    return Backend("clickhouse", lambda: ClickHouseStore(CLICKHOUSE_URL, database=database))


@pytest.fixture
def store(backend: Backend) -> Iterator[SqlStore]:
    opened = backend.open()
    try:
        opened.ensure_schema()
        yield opened
    finally:
        if backend.name == "clickhouse":
            dropper = backend.open()
            try:
                dropper._command(f"DROP DATABASE IF EXISTS {opened.database}")
            finally:
                dropper.close()
        opened.close()


def count(store: SqlStore, table: str) -> int:
    return int(store.scalar(f"SELECT count() FROM {store.database}.{table}"))


# --- builders ----------------------------------------------------------------------------------


def row(
    transaction_id: str,
    timestamp_ms: int,
    value: str,
    *,
    aggregation_type: str = "sum_agg",
    charge_id: str = "ch_sum",
    charge_filter_id: str = "",
    grouped_by: tuple[tuple[str, str], ...] = (),
    organization_id: str = ORG,
    subscription_id: str = SUB,
    precise_total_amount_cents: Decimal | None = None,
) -> EnrichedRow:
    event = UsageEvent(
        organization_id=organization_id,
        external_subscription_id=EXT_SUB,
        code="metric",
        transaction_id=transaction_id,
        timestamp_ms=timestamp_ms,
        properties={"value": value, **dict(grouped_by)},
        precise_total_amount_cents=precise_total_amount_cents,
    )
    decimal_value = None if aggregation_type == "unique_count_agg" else Decimal(value)
    return EnrichedRow(
        event=event,
        subscription_id=subscription_id,
        plan_id="plan_1",
        customer_id="cust_1",
        aggregation_type=aggregation_type,
        value=value,
        decimal_value=decimal_value,
        charge_id=charge_id,
        charge_filter_id=charge_filter_id,
        grouped_by=grouped_by,
    )


def events_wire(rows: list[EnrichedRow], first_offset: int = 0):
    sources = [
        RawRecord("raw", 0, first_offset + i, r.event.timestamp_ms) for i, r in enumerate(rows)
    ]
    return wire.events_table(rows, sources, ingested_at_ms=T0 + 60_000)


# --- schema and idempotent inserts -------------------------------------------------------------


def test_ensure_schema_twice_is_fine(store: SqlStore) -> None:
    store.ensure_schema()
    store.ensure_schema()
    for table in ddl.ALL_TABLES:
        if table is not ddl.SCHEMA_MIGRATIONS:
            assert count(store, table.name) == 0
    # A new database is at the latest version, recorded once per version.
    assert migrations.applied_versions(store) == {1, *(m.version for m in migrations.MIGRATIONS)}
    assert count(store, "schema_migrations") == 1 + len(migrations.MIGRATIONS)


def test_insert_with_the_same_token_stores_once(store: SqlStore) -> None:
    rows = [row("tx_1", T0 + 1_000, "1"), row("tx_2", T0 + 2_000, "2")]
    table = events_wire(rows)

    store.insert(ddl.EVENTS_INSERT, table, "batch_1:events")
    store.insert(ddl.EVENTS_INSERT, table, "batch_1:events")
    assert count(store, "events") == 2

    store.insert(ddl.EVENTS_INSERT, table, "batch_2:events")
    assert count(store, "events") == 4


def test_tokens_are_per_table(store: SqlStore) -> None:
    """The same token in two tables: each table remembers its own tokens."""
    key = [(identity_of(row("tx_1", T0, "1").event), RawRecord("raw", 0, 0, T0))]
    store.insert(ddl.EVENTS_INSERT, events_wire([row("tx_1", T0, "1")]), "same")
    store.insert(ddl.DEDUP_KEYS_INSERT, wire.dedup_keys_table(key, "e1"), "same")
    assert count(store, "events") == 1
    assert count(store, "dedup_keys") == 1


def test_empty_insert_is_a_no_op(store: SqlStore) -> None:
    store.insert(ddl.EVENTS_INSERT, events_wire([]), "empty")
    assert count(store, "events") == 0


def test_token_survives_reopening_the_store(backend: Backend, store: SqlStore) -> None:
    """A crash replay after a restart must still be ignored (dedup log is persistent)."""
    table = events_wire([row("tx_1", T0, "1")])
    store.insert(ddl.EVENTS_INSERT, table, "batch_1:events")
    store.close()
    reopened = backend.open()
    try:
        reopened.ensure_schema()
        reopened.insert(ddl.EVENTS_INSERT, table, "batch_1:events")
        assert count(reopened, "events") == 1
    finally:
        reopened.close()


def test_decimals_and_grouped_by_round_trip(store: SqlStore) -> None:
    rows = [
        row("tx_sum", T0 + 1, "1.5", grouped_by=(("a", "x"),),
            precise_total_amount_cents=Decimal("12.25")),
        row("tx_unique", T0 + 2, "user_42", aggregation_type="unique_count_agg"),
        row("tx_two", T0 + 3, "-0.000001", grouped_by=(("a", "y"), ("b", "z"))),
    ]
    store.insert(ddl.EVENTS_INSERT, events_wire(rows), "t")
    db = store.database

    def col(expr: str, tx: str) -> str:
        return store.scalar(
            f"SELECT {expr} FROM {db}.events WHERE transaction_id = {{tx:String}}", {"tx": tx}
        )

    assert Decimal(col("toString(decimal_value)", "tx_sum")) == Decimal("1.5")
    assert col("value", "tx_sum") == "1.5"
    assert col("toString(grouped_by)", "tx_sum") == "{'a':'x'}"
    assert col("toString(mapKeys(grouped_by))", "tx_sum") == "['a']"
    assert col("grouped_by['a']", "tx_sum") == "x"
    assert Decimal(col("toString(precise_total_amount_cents)", "tx_sum")) == Decimal("12.25")

    assert col("isNull(decimal_value)", "tx_unique") == "1"
    assert col("value", "tx_unique") == "user_42"
    assert col("toString(grouped_by)", "tx_unique") == "{}"
    assert col("isNull(precise_total_amount_cents)", "tx_unique") == "1"

    assert Decimal(col("toString(decimal_value)", "tx_two")) == Decimal("-0.000001")
    assert col("toString(grouped_by)", "tx_two") == "{'a':'y','b':'z'}"

    assert col("toUnixTimestamp64Milli(timestamp)", "tx_two") == str(T0 + 3)
    assert col("toUnixTimestamp64Milli(ingested_at)", "tx_two") == str(T0 + 60_000)
    assert col("source_offset", "tx_two") == "2"


# --- dedup index -------------------------------------------------------------------------------


def test_find_seen_returns_stored_positions(store: SqlStore) -> None:
    first = identity_of(row("tx_1", T0, "1").event)
    second = identity_of(row("tx_2", T0, "1").event)
    unknown = identity_of(row("tx_never", T0, "1").event)
    keys = [
        (first, RawRecord("raw", 0, 5, T0 + 1_000)),
        (second, RawRecord("raw", 1, 7, T0 + 5_000)),
        (second, RawRecord("raw", 2, 9, T0 + 6_000)),
    ]
    store.insert(ddl.DEDUP_KEYS_INSERT, wire.dedup_keys_table(keys, "epoch_1"), "b:keys")

    found = store.find_seen([first, second, unknown], since_ms=T0)
    assert set(found) == {first, second}
    assert found[first] == [LogPosition("epoch_1", "raw", 0, 5)]
    assert sorted(found[second], key=lambda p: p.partition) == [
        LogPosition("epoch_1", "raw", 1, 7),
        LogPosition("epoch_1", "raw", 2, 9),
    ]
    assert all(isinstance(ident, bytes) and len(ident) == 16 for ident in found)


def test_find_seen_since_excludes_older_keys(store: SqlStore) -> None:
    old = identity_of(row("tx_old", T0, "1").event)
    new = identity_of(row("tx_new", T0, "1").event)
    keys = [(old, RawRecord("raw", 0, 1, T0)), (new, RawRecord("raw", 0, 2, T0 + 10_000))]
    store.insert(ddl.DEDUP_KEYS_INSERT, wire.dedup_keys_table(keys, "e"), "b:keys")

    assert set(store.find_seen([old, new], since_ms=T0 + 5_000)) == {new}
    # seen_at >= since: the boundary is included.
    assert set(store.find_seen([old, new], since_ms=T0 + 10_000)) == {new}
    assert set(store.find_seen([old, new], since_ms=T0 + 10_001)) == set()
    assert set(store.find_seen([old, new], since_ms=0)) == {old, new}


def test_find_seen_of_nothing_is_empty(store: SqlStore) -> None:
    assert store.find_seen([], since_ms=0) == {}


def test_stored_identities_are_every_key_of_the_window_once(store: SqlStore) -> None:
    # Identities spread over the whole byte range, so every one of the 16 range reads has some,
    # including the edges (0x00… and 0xff…).
    edges = [bytes([0] * 16), bytes([0x0F] + [0xFF] * 15), bytes([0x10] + [0] * 15),
             bytes([0xFF] * 16)]
    new = edges + [bytes([b]) + os.urandom(15) for b in range(0, 256, 3)]
    old = [bytes([b]) + os.urandom(15) for b in range(1, 256, 50)]
    keys = [(k, RawRecord("raw", 0, i, T0 + 10_000)) for i, k in enumerate(new)]
    keys += [(k, RawRecord("raw", 1, i, T0)) for i, k in enumerate(old)]
    store.insert(ddl.DEDUP_KEYS_INSERT, wire.dedup_keys_table(keys, "e"), "b:keys")

    chunks = list(store.stored_identities(T0 + 5_000))
    assert all(len(c) % 16 == 0 for c in chunks)
    got = [c[i:i + 16] for c in chunks for i in range(0, len(c), 16)]
    assert sorted(got) == sorted(new)
    got_all = [c[i:i + 16] for c in store.stored_identities(0) for i in range(0, len(c), 16)]
    assert sorted(got_all) == sorted(new + old)


# --- batch manifest ----------------------------------------------------------------------------


def write_batch(
    store: SqlStore, batch_id: str, state: str, tallies: dict[int, PartitionTally],
    *, log_epoch: str = "e1", topic: str = "raw",
) -> None:
    table = wire.batches_table(
        batch_id=batch_id, log_epoch=log_epoch, topic=topic, state=state, tallies=tallies,
        written_at_ms=T0,
    )
    store.insert(ddl.manifest_insert(state), table, f"{batch_id}:{state}")


def opened(store: SqlStore, topic: str = "raw") -> list[tuple]:
    """(batch id, log epoch, partition, first, last offset) of each open batch range."""
    return [(b.batch_id, b.log_epoch, b.partition, b.from_offset, b.to_offset)
            for b in store.open_batches(topic)]


def test_batch_manifest(store: SqlStore) -> None:
    a = {
        0: PartitionTally(0, 9, consumed=10, stored=7, duplicates=2, dead_letters=1,
                          enriched_rows=9),
        1: PartitionTally(100, 149, consumed=50, stored=50, enriched_rows=60),
    }
    c = {0: PartitionTally(10, 19, consumed=10, stored=10, enriched_rows=10)}
    b = {0: PartitionTally(20, 29, consumed=10, stored=10, enriched_rows=10)}
    write_batch(store, "A", "begin", a)
    write_batch(store, "A", "done", a)
    write_batch(store, "C", "begin", c)
    write_batch(store, "C", "done", c)
    write_batch(store, "B", "begin", b)  # crashed before 'done'
    # Other log epochs and topics do not leak in.
    write_batch(store, "X", "begin", {0: PartitionTally(500, 599, consumed=100)}, log_epoch="e0")
    write_batch(store, "Y", "begin", {3: PartitionTally(0, 4, consumed=5)}, topic="other")

    # Open batches of every log epoch, of this topic only.
    assert opened(store) == [("B", "e1", 0, 20, 29), ("X", "e0", 0, 500, 599)]
    assert store.committed_offsets("e1", "raw") == {0: 20, 1: 150}
    assert store.partition_counts("e1") == [
        PartitionCounts("raw", 0, consumed=20, stored=17, duplicates=2, dead_letters=1,
                        next_offset=20),
        PartitionCounts("raw", 1, consumed=50, stored=50, duplicates=0, dead_letters=0,
                        next_offset=150),
    ]

    write_batch(store, "B", "done", b)
    assert opened(store) == [("X", "e0", 0, 500, 599)]
    assert store.committed_offsets("e1", "raw") == {0: 30, 1: 150}
    assert store.committed_offsets("e0", "raw") == {}
    [x] = store.open_batches("raw")
    assert (x.consumed, x.begun_at_ms) == (100, T0)
    assert [(p.partition, p.consumed) for p in store.partition_counts()] == [(0, 30), (1, 50)]


def test_begin_markers_have_their_own_table_and_old_ones_still_count(store: SqlStore) -> None:
    a = {0: PartitionTally(0, 9, consumed=10, stored=10, enriched_rows=10)}
    b = {0: PartitionTally(10, 19, consumed=10, stored=10, enriched_rows=10)}
    write_batch(store, "A", "begin", a)
    assert opened(store) == [("A", "e1", 0, 0, 9)]
    assert (count(store, "batch_begins"), count(store, "batches")) == (1, 0)
    # A data directory from before the split: its 'begin' rows are in batches.
    table = wire.batches_table(batch_id="B", log_epoch="e1", topic="raw", state="begin",
                               tallies=b, written_at_ms=1)
    store.insert(ddl.BATCHES_INSERT, table, "B:begin")
    assert opened(store) == [("A", "e1", 0, 0, 9), ("B", "e1", 0, 10, 19)]
    write_batch(store, "A", "done", a)
    write_batch(store, "B", "done", b)
    assert opened(store) == []
    assert store.committed_offsets("e1", "raw") == {0: 20}


def test_replayed_done_marker_is_not_counted_twice(store: SqlStore) -> None:
    a = {0: PartitionTally(0, 9, consumed=10, stored=10, enriched_rows=10)}
    write_batch(store, "A", "begin", a)
    write_batch(store, "A", "done", a)
    write_batch(store, "A", "done", a)  # replay after a crash before the Kafka commit
    [counts] = store.partition_counts("e1")
    assert counts.consumed == 10
    assert counts.stored == 10


# --- usage read --------------------------------------------------------------------------------


def bucket(n: int) -> int:
    return T0 + n * BUCKET_MS


EU = (("region", "eu"),)


def usage_rows() -> tuple[list[EnrichedRow], list[EnrichedRow]]:
    """Two batches of priced rows over buckets 0..3 (bucket 0 and 3 fall outside the window)."""
    first = [
        row("s0", bucket(0) + 5, "100"),
        row("s1a", bucket(1) + 1_000, "1.5", precise_total_amount_cents=Decimal("12.5")),
        row("s1b", bucket(1) + 2_000, "2.25"),
        row("f1a", bucket(1) + 10, "4", charge_filter_id="f1", grouped_by=EU),
        row("l1", bucket(1) + 5_000, "7", aggregation_type="latest_agg", charge_id="ch_latest"),
        # Outside the subscription / organization read below.
        row("o1", bucket(1), "50", subscription_id="sub_other"),
        row("o2", bucket(1), "60", organization_id="org_other"),
    ]
    second = [
        row("s2a", bucket(2) + 500, "0.1"),
        row("s2b", bucket(2) + 100, "3"),
        row("f2a", bucket(2) + 20, "5", charge_filter_id="f1", grouped_by=EU),
        row("l2a", bucket(2) + 10, "-2", aggregation_type="latest_agg", charge_id="ch_latest"),
        row("l2b", bucket(2) + 1, "9", aggregation_type="latest_agg", charge_id="ch_latest"),
        row("s3", bucket(3), "1000"),
        row("l3", bucket(3) + 1, "11", aggregation_type="latest_agg", charge_id="ch_latest"),
        row("unpriced", bucket(2), "8", charge_id=""),  # no charge: not rolled up
    ]
    return first, second


def test_read_usage_sums_the_window(store: SqlStore) -> None:
    first, second = usage_rows()
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(rollup(first), "batch_1"), "b1:rollups")
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(rollup(second), "batch_2"), "b2:rollups")
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(rollup(second), "batch_2"), "b2:rollups")

    usage = store.read_usage(ORG, SUB, bucket(1), bucket(3))
    by_key = {(u.charge_id, u.charge_filter_id, u.grouped_by): u for u in usage}
    assert set(by_key) == {("ch_sum", "", ()), ("ch_sum", "f1", EU), ("ch_latest", "", ())}

    plain = by_key["ch_sum", "", ()]
    assert plain.aggregation_type == "sum_agg"
    assert plain.events_count == 4
    assert plain.value_sum == Decimal("6.85")
    assert plain.value_max == Decimal("3")
    assert plain.latest_value == Decimal("0.1")  # s2a has the latest timestamp in the window
    assert plain.precise_total_amount_cents == Decimal("12.5")

    grouped = by_key["ch_sum", "f1", EU]
    assert grouped.grouped_by == (("region", "eu"),)
    assert grouped.events_count == 2
    assert grouped.value_sum == Decimal("9")
    assert grouped.value_max == Decimal("5")
    assert grouped.latest_value == Decimal("5")
    assert grouped.precise_total_amount_cents == Decimal("0")

    latest = by_key["ch_latest", "", ()]
    assert latest.aggregation_type == "latest_agg"
    assert latest.events_count == 3
    assert latest.value_sum == Decimal("14")
    assert latest.value_max == Decimal("9")
    assert latest.latest_value == Decimal("-2")  # argMax by timestamp, not by value


def test_read_usage_window_bounds(store: SqlStore) -> None:
    first, second = usage_rows()
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(rollup(first + second), "b"), "b:r")

    def plain_sum(from_ms: int, to_ms: int) -> Decimal | None:
        usage = store.read_usage(ORG, SUB, from_ms, to_ms)
        sums = [u.value_sum for u in usage if (u.charge_id, u.charge_filter_id) == ("ch_sum", "")]
        return sums[0] if sums else None

    assert plain_sum(bucket(0), bucket(1)) == Decimal("100")
    assert plain_sum(bucket(0), bucket(4)) == Decimal("1106.85")
    assert plain_sum(bucket(3), bucket(4)) == Decimal("1000")
    assert plain_sum(bucket(4), bucket(8)) is None
    assert store.read_usage(ORG, "sub_other", bucket(0), bucket(4))[0].value_sum == Decimal(50)
    assert store.read_usage("org_nobody", SUB, bucket(0), bucket(4)) == []


def test_read_usage_of_hand_built_states(store: SqlStore) -> None:
    key = RollupKey(ORG, EXT_SUB, SUB, "ch_max", "", (("k", "v"),), "metric", "max_agg",
                    bucket(0))
    states = {
        key: RollupState(events_count=2, value_sum=Decimal("0.000000000001"),
                         value_max=Decimal("1e-12"), latest_timestamp_ms=T0 + 1,
                         latest_value=Decimal("0.000000000001")),
    }
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(states, "b"), "b:r")
    [usage] = store.read_usage(ORG, SUB, bucket(0), bucket(1))
    assert usage.grouped_by == (("k", "v"),)
    assert usage.value_sum == Decimal("1e-12")
    assert usage.value_max == Decimal("1e-12")
    assert usage.latest_value == Decimal("1e-12")


def test_out_of_range_rollup_fails_loudly_instead_of_storing_zero(store: SqlStore) -> None:
    big = "1" + "0" * 27  # 1e27 does not fit Decimal(38, 12); enrichment rejects it first
    rollups = rollup([row("big", T0, big)])
    table = wire.rollups_table(rollups, "b")
    with pytest.raises(StoreDataError) as dry_run:  # the dry run sees what the INSERT would
        store.check_insert(ddl.ROLLUPS_INSERT, table)
    with pytest.raises(StoreDataError) as real:
        store.insert(ddl.ROLLUPS_INSERT, table, "b:r")
    assert dry_run.value.code == real.value.code
    assert real.value.code in VALUE_RANGE_ERROR_CODES
    assert store.read_usage(ORG, SUB, bucket(0), bucket(1)) == []
    store.check_insert(ddl.ROLLUPS_INSERT, wire.rollups_table(rollup([row("ok", T0, "1")]), "c"))
    assert count(store, "usage_rollups") == 0  # a dry run writes nothing


def test_sums_of_the_largest_values_do_not_overflow(store: SqlStore) -> None:
    """Issue 16: two valid 9e25 values in one bucket overflowed Decimal(38, 12) at INSERT, and
    in two buckets wrapped around in sum() at read time."""
    big = "9" + "0" * 25
    same_bucket = rollup([row("a", T0, big), row("b", T0 + 1, big)])
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(same_bucket, "b1"), "b1:r")
    other_bucket = rollup([row("c", T0 + BUCKET_MS, big, precise_total_amount_cents=Decimal(big))])
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(other_bucket, "b2"), "b2:r")
    [usage] = store.read_usage(ORG, SUB, bucket(0), bucket(2))
    assert usage.value_sum == 3 * Decimal(big)
    assert usage.precise_total_amount_cents == Decimal(big)
    [(_, days)] = store.read_daily_sums(ORG, SUB, bucket(0), bucket(2), "UTC").items()
    assert sum(total for _, total in days) == 3 * Decimal(big)


def test_engine_errors_are_classified(store: SqlStore) -> None:
    with pytest.raises(StoreDataError):
        store.scalar("SELECT toDecimal128(assumeNotNull('1e400'), 12)")
    with pytest.raises(StoreError) as not_data:
        store.scalar("SELECT * FROM no_such_table")
    assert not isinstance(not_data.value, StoreDataError)


def test_rolling_back_a_batch_deletes_its_rows_and_closes_it(store: SqlStore) -> None:
    rows = [row("r1", T0, "5"), row("r2", T0 + 1, "7")]
    keep = [row("k1", T0 + 2, "100")]
    b = {0: PartitionTally(0, 1, consumed=2)}
    write_batch(store, "B", "begin", b, log_epoch="old")
    store.insert(ddl.EVENTS_INSERT, wire.events_table(rows, [
        RawRecord("raw", 0, i, T0) for i in range(2)], T0, "B"), "B:events")
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(rollup(rows), "B"), "B:rollups")
    store.insert(ddl.ROLLUPS_INSERT, wire.rollups_table(rollup(keep), "K"), "K:rollups")
    keys = [(identity_of(r.event), RawRecord("raw", 0, i, T0)) for i, r in enumerate(rows)]
    store.insert(ddl.DEDUP_KEYS_INSERT, wire.dedup_keys_table(keys, "old"), "B:keys")
    other_epoch = [(identity_of(keep[0].event), RawRecord("raw", 0, 0, T0))]
    store.insert(ddl.DEDUP_KEYS_INSERT, wire.dedup_keys_table(other_epoch, "new"), "K:keys")

    parts = store.open_batches("raw")
    store.roll_back_batch("raw", parts, "log epoch old is gone")
    store.roll_back_batch("raw", parts, "log epoch old is gone")  # idempotent

    assert store.open_batches("raw") == []
    assert count(store, "events") == 0
    [usage] = store.read_usage(ORG, SUB, bucket(0), bucket(1))
    assert usage.value_sum == 100  # the other batch's rows stay
    assert store.find_seen([k for k, _ in keys], 0) == {}
    assert list(store.find_seen([other_epoch[0][0]], 0)) == [other_epoch[0][0]]
    [rolled] = store.rolled_back_batches()
    assert (rolled["batch_id"], rolled["log_epoch"], rolled["consumed"]) == ("B", "old", 2)


# --- catalog and organizations -----------------------------------------------------------------


def test_catalog_docs_latest_version_per_key(store: SqlStore) -> None:
    assert store.load_catalog_docs() == []
    store.put_catalog_docs([])  # nothing to write
    store.put_catalog_docs([
        CatalogDoc(ORG, "plan", "basic", '{"v": 1}'),
        CatalogDoc(ORG, "plan", "pro", '{"p": 1}'),
    ])
    store.put_catalog_docs([CatalogDoc(ORG, "plan", "basic", '{"v": 2}')])
    store.put_catalog_docs([
        CatalogDoc(ORG, "metric", "calls", "first"),
        CatalogDoc(ORG, "metric", "calls", "second"),  # later in the same call wins
    ])
    assert [_content(d) for d in store.load_catalog_docs()] == [
        (ORG, "metric", "calls", "second", False),
        (ORG, "plan", "basic", '{"v": 2}', False),
        (ORG, "plan", "pro", '{"p": 1}', False),
    ]

    store.put_catalog_docs([CatalogDoc(ORG, "plan", "pro", '{"p": 1}', deleted=True)])
    docs = {(d.kind, d.key): d for d in store.load_catalog_docs()}
    assert docs["plan", "pro"].deleted is True
    assert docs["plan", "basic"].deleted is False

    store.put_catalog_docs([CatalogDoc(ORG, "plan", "pro", '{"p": 2}')])  # re-created
    docs = {(d.kind, d.key): d for d in store.load_catalog_docs()}
    assert _content(docs["plan", "pro"]) == (ORG, "plan", "pro", '{"p": 2}', False)


def _content(doc: CatalogDoc) -> tuple:
    return (doc.organization_id, doc.kind, doc.key, doc.body, doc.deleted)


def test_catalog_history_keeps_every_version_with_its_effective_time(store: SqlStore) -> None:
    store.put_catalog_docs([CatalogDoc(ORG, "plan", "p", "v1", effective_at_ms=1_000)])
    store.put_catalog_docs([CatalogDoc(ORG, "plan", "p", "v2", effective_at_ms=5_000)])
    store.put_catalog_docs([CatalogDoc(ORG, "plan", "p", "", deleted=True, version=10**15,
                                       effective_at_ms=9_000)])
    history = store.load_catalog_history()
    assert [(d.body, d.deleted, d.effective_at_ms) for d in history] == [
        ("v1", False, 1_000), ("v2", False, 5_000), ("", True, 9_000)
    ]
    assert history[-1].version == 10**15 and history[0].version < history[1].version


def test_catalog_docs_are_kept_per_organization(store: SqlStore) -> None:
    store.put_catalog_docs([CatalogDoc("org_a", "plan", "basic", "a")])
    store.put_catalog_docs([CatalogDoc("org_b", "plan", "basic", "b")])
    assert [(d.organization_id, d.body) for d in store.load_catalog_docs()] == [
        ("org_a", "a"), ("org_b", "b"),
    ]


def test_ensure_organization_is_idempotent(store: SqlStore) -> None:
    assert store.organizations() == []
    first = store.ensure_organization(ORG, "Acme")
    assert first == Organization(ORG, "Acme")
    again = store.ensure_organization(ORG, "Acme renamed")
    assert again == first
    store.ensure_organization("org_2", "Other")
    assert store.organizations() == [first, Organization("org_2", "Other")]


def test_api_keys_are_stored_as_digests_only(store: SqlStore) -> None:
    digest = "ab" * 32
    store.add_api_key(ApiKeyRecord("key_1", ORG, "ci", "admin", digest))
    assert store.api_keys() == [ApiKeyRecord("key_1", ORG, "ci", "admin", digest)]
    assert store.scalar(f"SELECT count() FROM {store.database}.api_keys") == "1"
    columns = store.scalar(
        "SELECT arrayStringConcat(groupArray(name), ',') FROM system.columns "
        "WHERE database = {db:String} AND table = 'organizations'", {"db": store.database})
    assert "api_key" not in columns.split(",")


# --- dead letters ------------------------------------------------------------------------------


def letter(tx: str, code: str, org: str, offset: int, payload: bytes = b'{"bad": 1}'):
    event = row(tx, T0, "1", organization_id=org).event
    return DeadLetter(RawRecord("raw", 0, offset, T0, payload), code, f"{code} for {tx}", event)


def test_dead_letters_newest_first_with_filters(store: SqlStore) -> None:
    batches = [
        (T0 + 1_000, [letter("tx_a", "invalid_value", ORG, 1)]),
        (T0 + 2_000, [letter("tx_b", "invalid_value", "org_2", 2)]),
        (T0 + 3_000, [letter("tx_c", "unknown_metric", ORG, 3),
                      letter("tx_d", "unknown_metric", ORG, 4)]),
    ]
    for failed_at, letters in batches:
        table = wire.dead_letters_table(letters, failed_at, f"batch_{failed_at}")
        store.insert(ddl.DEAD_LETTERS_INSERT, table, f"{failed_at}:dead")
        store.insert(ddl.DEAD_LETTERS_INSERT, table, f"{failed_at}:dead")  # replay

    def txs(**filters) -> list[str]:
        return [d["transaction_id"] for d in store.dead_letters(**filters)]

    assert txs() == ["tx_c", "tx_d", "tx_b", "tx_a"]
    assert txs(error_code="invalid_value") == ["tx_b", "tx_a"]
    assert txs(organization_id=ORG) == ["tx_c", "tx_d", "tx_a"]
    assert txs(error_code="invalid_value", organization_id=ORG) == ["tx_a"]
    assert txs(error_code="no_such_code") == []
    assert txs(since_ms=T0 + 2_000) == ["tx_c", "tx_d", "tx_b"]
    assert txs(until_ms=T0 + 2_000) == ["tx_a"]
    assert txs(limit=2) == ["tx_c", "tx_d"]

    newest = store.dead_letters(limit=1)[0]
    assert newest["organization_id"] == ORG
    assert newest["external_subscription_id"] == EXT_SUB
    assert newest["error_code"] == "unknown_metric"
    assert newest["error_message"] == "unknown_metric for tx_c"
    assert newest["payload"] in ('{"bad": 1}', b'{"bad": 1}')
    assert newest["source_topic"] == "raw"
    assert (newest["source_partition"], newest["source_offset"]) == (0, 3)
    assert newest["failed_at_ms"] == T0 + 3_000


def test_dead_letter_without_event(store: SqlStore) -> None:
    orphan = DeadLetter(RawRecord("raw", 1, 9, T0, None), "invalid_json", "not JSON")
    store.insert(ddl.DEAD_LETTERS_INSERT, wire.dead_letters_table([orphan], T0, "b"), "b:dead")
    [stored] = store.dead_letters(error_code="invalid_json")
    assert stored["organization_id"] == ""
    assert stored["transaction_id"] == ""
    assert stored["payload"] in ("", b"")


def test_dead_letters_listing_survives_non_utf8_payload(store: SqlStore) -> None:
    raw = b"\xff\xfe not json"
    bad = DeadLetter(RawRecord("raw", 0, 1, T0, raw), "invalid_json", "not JSON")
    store.insert(ddl.DEAD_LETTERS_INSERT, wire.dead_letters_table([bad], T0, "b"), "b:dead")
    assert store.scalar(
        f"SELECT hex(payload) FROM {store.database}.dead_letters"
    ) == raw.hex().upper()
    [stored] = store.dead_letters()
    assert stored["transaction_id"] == "" and stored["payload"] == raw


# --- data directory ownership (chdb only) ------------------------------------------------------


def test_second_process_cannot_open_the_same_data_directory(
    backend: Backend, store: SqlStore
) -> None:
    if backend.name != "chdb":
        pytest.skip("a ClickHouse server is shared by design; only chdb locks a directory")
    code = (
        "import sys\n"
        "from sinks.chdb_store import ChdbStore\n"
        f"store = ChdbStore({str(backend.data_dir)!r}, database='meterline')\n"
        "store.ensure_schema()\n"
        "print('OPENED')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "OPENED" not in result.stdout
    assert "lock" in output.lower() or "StoreError" in output
    # The owner is unaffected.
    assert count(store, "events") == 0


def test_a_revoked_key_keeps_its_record_and_its_first_revocation_time(store: SqlStore) -> None:
    store.add_api_key(ApiKeyRecord("key_1", ORG, "old", "read", "ab" * 32))
    store.add_api_key(ApiKeyRecord("key_2", ORG, "new", "admin", "cd" * 32))
    assert [k.revoked_at_ms for k in store.api_keys()] == [None, None]
    assert all(k.created_at_ms > 0 for k in store.api_keys())
    store.revoke_api_key("key_1")
    [old, new] = store.api_keys()
    assert (old.id, new.id) == ("key_1", "key_2") and new.revoked_at_ms is None
    assert old.revoked_at_ms is not None and old.revoked_at_ms >= old.created_at_ms
    first = old.revoked_at_ms
    store.revoke_api_key("key_1")  # again: the first revocation counts
    assert store.api_keys()[0].revoked_at_ms == first
