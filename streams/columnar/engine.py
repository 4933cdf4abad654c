"""A batch from raw messages to its wire tables, with its rows as columns.

:meth:`ColumnarEngine.process` decides exactly what :func:`streams.batch.process_batch`
decides (decode, dedup against the store and within the batch, enrich, with the same reason
codes) and :meth:`ColumnarEngine.encode` writes the same rows as
:func:`sinks.batch_tables.encode_batch`, up to
the order of rows and the notation of decimals (``12.5`` or ``12.500000000000``: the same
stored value). ``tests/unit/test_columnar.py`` holds the two paths to that, on random batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from aggregation.rollup import percentage_rows, rollup, unique_rollup
from enrichment.catalog_index import CatalogIndex
from schemas import exact_json
from sinks import ddl, wire
from sinks.batch_tables import EncodedBatch
from sinks.store import LogPosition
from streams.batch import BatchResult, RawMessage, decode_messages, look_up_seen
from streams.columnar.enrich import ColumnarEnricher, FastRows, dedup_and_enrich_columns
from streams.columnar.rollup import fast_rollups
from streams.columnar.templates import TemplateTable
from streams.stopwatch import Stopwatch


@dataclass(slots=True)
class ColumnarBatch:
    """A processed batch: the per-event result (tallies, dead letters, dedup keys, the rows
    of slow routes) and the fast rows as columns over the stored events."""

    result: BatchResult
    fast: FastRows
    templates: TemplateTable  # what the fast rows' template ids refer to


class FastRowTable(NamedTuple):
    """The roll-up input of the fast rows (see :func:`streams.columnar.rollup.fast_rollups`)."""

    rows: pa.Table
    amounts: Sequence[Decimal | None]


class ColumnarEngine:
    """Processes batches against the current catalog (a new index: new templates)."""

    def __init__(self, catalog: Callable[[], CatalogIndex]):
        self.catalog = catalog
        self._enricher: ColumnarEnricher | None = None

    @property
    def enricher(self) -> ColumnarEnricher:
        """The enricher of the current catalog index; a new one (new templates, plans and
        memos, which hold template ids) for a new index or when its template table is full."""
        index = self.catalog()
        enricher = self._enricher
        if enricher is None or enricher.index is not index or enricher.table.full:
            enricher = self._enricher = ColumnarEnricher(index)
        return enricher

    def process(
        self,
        messages: Sequence[RawMessage],
        *,
        log_epoch: str,
        find_seen: Callable[[list[bytes], int], dict[bytes, list[LogPosition]]],
        dedup_window_days: int,
        watch: Stopwatch | None = None,
        also_seen: Mapping[bytes, int] | None = None,
        rejected: Mapping[tuple[int, int], tuple[str, str]] | None = None,
    ) -> ColumnarBatch:
        """Decode, dedup and enrich ``messages`` (in partition-offset order); the arguments
        are those of :func:`streams.batch.process_batch`. ``watch``, when given, gets the
        laps ``parse``, ``dedup`` (the store's dedup index) and ``enrich``."""
        watch = watch or Stopwatch()
        enricher = self.enricher
        result = BatchResult()
        decoded = decode_messages(messages, result, rejected)
        watch.lap("parse")
        lookup = look_up_seen(decoded, result, log_epoch=log_epoch, find_seen=find_seen,
                              dedup_window_days=dedup_window_days, also_seen=also_seen)
        watch.lap("dedup")
        fast = FastRows()
        dedup_and_enrich_columns(decoded.events, lookup, enricher, result, fast)
        watch.lap("enrich")
        return ColumnarBatch(result, fast, enricher.table)

    def encode(
        self, batch: ColumnarBatch, log_epoch: str, batch_id: str, now_ms: int,
        watch: Stopwatch | None = None,
    ) -> EncodedBatch:
        """The batch's wire tables (``now_ms``: when it was prepared). ``watch``, when given,
        gets the laps ``wire`` (the tables) and ``rollup``."""
        watch = watch or Stopwatch()
        result = batch.result
        slow = result.rows
        offsets = [m.offset for m in result.sources]
        stored = StoredColumns.of(result.stored_keys)
        templates = batch.templates.columns()
        fast_events, fast_rows = self._fast_tables(batch, templates, stored, now_ms, batch_id)
        watch.lap("wire")
        rollups = _concat(
            fast_rollups(fast_rows.rows, templates, fast_rows.amounts, batch_id),
            wire.rollups_table(rollup(slow, offsets), batch_id),
        )
        unique = wire.unique_rollups_table(unique_rollup(slow, offsets), batch_id)
        values = wire.event_values_table(percentage_rows(slow, offsets), batch_id)
        watch.lap("rollup")
        encoded = EncodedBatch({
            "keys": stored.dedup_keys(result.stored_keys, log_epoch),
            "events": _concat(
                fast_events, wire.events_table(slow, result.sources, now_ms, batch_id)
            ),
            "rollups": rollups,
            "unique": unique,
            "values": values,
            "dead": wire.dead_letters_table(result.dead_letters, now_ms, batch_id),
        })
        watch.lap("wire")
        return encoded

    def _fast_tables(
        self, batch: ColumnarBatch, templates: dict[str, pa.Array], stored: StoredColumns,
        now_ms: int, batch_id: str,
    ) -> tuple[pa.Table, FastRowTable]:
        """The ``events`` wire table of the fast rows, and their roll-up input."""
        fast = batch.fast
        row_event = pa.array(fast.events, pa.int32())  # each row's index among stored events
        template_ids = pa.array(fast.templates, pa.int32())
        _, _, _, txs, timestamps, props, amounts = wire.transpose(fast.stored, 7)
        row_timestamps = pc.take(pa.array(timestamps, pa.int64()), row_event)  # event times
        row_offsets = pc.take(stored.offsets, row_event)
        size = len(fast.templates)

        def per_template(name: str) -> pa.Array:
            return pc.take(templates[name], template_ids)

        def per_event(values: Sequence[object] | pa.Array, arrow_type: pa.DataType) -> pa.Array:
            if not isinstance(values, pa.Array):
                values = pa.array(values, arrow_type)
            return pc.take(values, row_event)

        events = wire.table_for(ddl.EVENTS_INSERT, {
            "organization_id": per_template("organization_id"),
            "external_subscription_id": per_template("external_subscription_id"),
            "subscription_id": per_template("subscription_id"),
            "plan_id": per_template("plan_id"),
            "customer_id": per_template("customer_id"),
            "code": per_template("code"),
            "aggregation_type": per_template("aggregation_type"),
            "transaction_id": per_event(txs, pa.string()),
            "timestamp_ms": row_timestamps,
            "value": fast.values,
            "decimal_value": fast.decimals,
            "charge_id": per_template("charge_id"),
            "charge_filter_id": per_template("charge_filter_id"),
            "grouped_by_json": per_template("grouped_by_json"),
            "precise_total_amount_cents": per_event(
                [None if a is None else str(a) for a in amounts], pa.string()
            ),
            "properties": per_event(exact_json.texts(props), pa.string()),
            "ingested_at_ms": [now_ms] * size,
            "source_topic": per_event(stored.topics, pa.string()),
            "source_partition": per_event(stored.partitions, pa.uint32()),
            "source_offset": pc.cast(row_offsets, pa.uint64()),
            "batch_id": [batch_id] * size,
        })
        rows = pa.table({
            "template": template_ids,
            "timestamp_ms": row_timestamps,
            "offset": row_offsets,
            "value": pa.array(fast.decimals, pa.string()),
            "event": row_event,
        })
        return events, FastRowTable(rows, amounts)


class StoredColumns(NamedTuple):
    """Where each stored event of a batch came from (its message), as Arrow columns: shared by
    the dedup keys and the events tables."""

    topics: pa.Array
    partitions: pa.Array
    offsets: pa.Array  # int64
    seen_at: pa.Array  # the message's Kafka timestamp, ms (the dedup key's seen-at)

    @classmethod
    def of(cls, stored_keys: Sequence[tuple[bytes, RawMessage]]) -> StoredColumns:
        topics, partitions, offsets, seen_at = wire.transpose(
            map(wire.SOURCE_FIELDS, [m for _, m in stored_keys]), 4)
        return cls(pa.array(topics, pa.string()), pa.array(partitions, pa.uint32()),
                   pa.array(offsets, pa.int64()), pa.array(seen_at, pa.int64()))

    def dedup_keys(self, stored_keys: Sequence[tuple[bytes, RawMessage]], log_epoch: str,
                   ) -> pa.Table:
        """Wire table for ``dedup_keys``: identity and first-seen position of stored events."""
        return wire.dedup_keys_of(
            [key for key, _ in stored_keys], log_epoch, self.topics, self.partitions,
            pc.cast(self.offsets, pa.uint64()), self.seen_at)


def _concat(first: pa.Table, second: pa.Table) -> pa.Table:
    """Two wire tables of one part as one (the second is usually empty)."""
    if not second.num_rows:
        return first
    if not first.num_rows:
        return second
    return pa.concat_tables([first, second.cast(first.schema)])
