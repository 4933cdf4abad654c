"""A processed batch in the store's wire format: the one place that knows its tables.

A batch is an :class:`EncodedBatch`, opaque to the pipeline: the store writes its parts
(:data:`BATCH_PARTS`, in commit order) with ``write_part`` and checks them with
``check_part``. The pipeline's columnar engine (``streams.columnar``) builds it from columns;
:func:`encode_batch` builds it from the result of the per-event reference,
``streams.batch.process_batch`` (any object with its fields: stored keys, rows and their
messages, roll-up states, percentage values, dead letters), which the engine is tested
against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sinks import ddl, wire

# The batch's row writes, in commit order (see streams.committer): part name → insert.
PART_INSERTS: dict[str, ddl.InsertSpec] = {
    "keys": ddl.DEDUP_KEYS_INSERT,  # dedup index: identities of stored events
    "events": ddl.EVENTS_INSERT,  # enriched events
    "rollups": ddl.ROLLUPS_INSERT,  # pre-aggregated usage, what billing reads
    "unique": ddl.UNIQUE_ROLLUPS_INSERT,
    "values": ddl.EVENT_VALUES_INSERT,
    "dead": ddl.DEAD_LETTERS_INSERT,  # dead letters, the record of truth for re-drive
}
BATCH_PARTS = tuple(PART_INSERTS)


@dataclass(frozen=True)
class EncodedBatch:
    """A batch's wire tables, one per part."""

    tables: dict[str, pa.Table]

    def rows(self, part: str) -> int:
        """Rows of one part."""
        return int(self.tables[part].num_rows)

    def newest_event_ms(self) -> dict[int, int]:
        """The latest event time stored per partition."""
        events = self.tables["events"]
        if not events.num_rows:
            return {}
        newest = events.group_by("source_partition").aggregate([("timestamp_ms", "max")])
        return dict(zip(newest["source_partition"].to_pylist(),
                        newest["timestamp_ms_max"].to_pylist(), strict=True))


def encode_batch(result: Any, log_epoch: str, batch_id: str, now_ms: int) -> EncodedBatch:
    """The wire tables of a processed batch (``now_ms``: when it was prepared)."""
    return EncodedBatch({
        "keys": wire.dedup_keys_table(result.stored_keys, log_epoch),
        "events": wire.events_table(result.rows, result.sources, now_ms, batch_id),
        "rollups": wire.rollups_table(result.rollups, batch_id),
        "unique": wire.unique_rollups_table(result.unique_rollups, batch_id),
        "values": wire.event_values_table(result.event_values, batch_id),
        "dead": wire.dead_letters_table(result.dead_letters, now_ms, batch_id),
    })


def table_of(part: str) -> str:
    """The ClickHouse table a part is written to (for metrics)."""
    return PART_INSERTS[part].table
