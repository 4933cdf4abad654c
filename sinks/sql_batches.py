"""The store's SQL for the pipeline: the dedup index, the commit manifest, rollbacks and
reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from sinks import ddl
from sinks.sql_base import SqlBase
from sinks.store import IDENTITY_BYTES, LogPosition, OpenBatch, PartitionCounts
from sinks.wire import table_for


class BatchSql(SqlBase):
    """Dedup index, manifest, rollbacks, reconciliation."""

    def find_seen(self, identities: list[bytes], since_ms: int) -> dict[bytes, list[LogPosition]]:
        """Stored positions per identity seen since ``since_ms``."""
        if not identities:
            return {}
        rows = self._query_with_keys(
            f"SELECT identity, log_epoch, source_topic, source_partition, source_offset "
            f"FROM {self.database}.dedup_keys WHERE identity IN (SELECT identity FROM {{keys}}) "
            f"AND seen_at >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')",
            identities,
            {"since": since_ms},
        ).to_pydict()
        found: dict[bytes, list[LogPosition]] = {}
        for ident, epoch, topic, part, off in zip(
            rows["identity"], rows["log_epoch"], rows["source_topic"],
            rows["source_partition"], rows["source_offset"], strict=True,
        ):
            found.setdefault(ident, []).append(LogPosition(epoch, topic, part, off))
        return found

    def stored_identities(self, since_ms: int) -> Iterator[bytes]:
        """Every dedup identity seen since ``since_ms``, in chunks of packed 16-byte digests.

        One query per 1/16 of the identity range (the table's ORDER BY), so a chunk stays small
        however large the index is."""
        for first in range(16):
            bounds = f"identity >= unhex('{first:x}0')"
            if first < 15:
                bounds += f" AND identity < unhex('{first + 1:x}0')"
            column = self._query(
                f"SELECT identity FROM {self.database}.dedup_keys WHERE {bounds} "
                f"AND seen_at >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')",
                {"since": since_ms},
            ).column("identity").combine_chunks().cast(pa.binary(IDENTITY_BYTES))
            if len(column):
                data = column.buffers()[1]
                yield data.slice(
                    column.offset * IDENTITY_BYTES, len(column) * IDENTITY_BYTES
                ).to_pybytes()

    def open_batches(self, topic: str) -> list[OpenBatch]:
        """Begun batches of ``topic``, of any log epoch, neither done nor rolled back."""
        # 'begin' markers live in batch_begins ('begin' rows in batches: an older data dir).
        markers = " UNION ALL ".join(
            f"SELECT batch_id, log_epoch, partition, from_offset, to_offset, consumed, state, "
            f"written_at FROM {self.database}.{table} WHERE topic = {{t:String}}"
            for table in ("batch_begins", "batches")
        )
        rows = self._rows(
            f"SELECT batch_id, log_epoch, partition, from_offset, to_offset, "
            f"max(consumed) consumed, toUnixTimestamp64Milli(min(written_at)) begun_at_ms "
            f"FROM ({markers}) "
            f"WHERE batch_id NOT IN (SELECT batch_id FROM {self.database}.batch_rollbacks) "
            f"GROUP BY batch_id, log_epoch, partition, from_offset, to_offset "
            f"HAVING countIf(state = 'done') = 0 ORDER BY from_offset",
            {"t": topic},
        )
        return [
            OpenBatch(r["batch_id"], r["partition"], r["from_offset"], r["to_offset"],
                      r["log_epoch"], r["consumed"], r["begun_at_ms"])
            for r in rows
        ]

    def delete_batch_rows(
        self, batch_id: str, log_epoch: str, topic: str, ranges: dict[int, tuple[int, int]]
    ) -> None:
        """Delete every row a batch wrote before its 'done' marker: its data rows by batch id,
        its dedup keys by log position (``ranges``: partition → first and last offset)."""
        db = self.database
        for table in ddl.BATCH_DATA_TABLES:
            self._command(
                f"DELETE FROM {db}.{table} WHERE batch_id = {{b:String}}", {"b": batch_id}
            )
        for partition, (first, last) in ranges.items():
            self._command(
                f"DELETE FROM {db}.dedup_keys WHERE log_epoch = {{e:String}} "
                f"AND source_topic = {{t:String}} AND source_partition = {{p:UInt32}} "
                f"AND source_offset BETWEEN {{f:UInt64}} AND {{l:UInt64}}",
                {"e": log_epoch, "t": topic, "p": partition, "f": first, "l": last},
            )

    def roll_back_batch(self, topic: str, parts: list[OpenBatch], reason: str) -> None:
        """Delete what an unfinished batch wrote and record it as rolled back (idempotent)."""
        first = parts[0]
        self.delete_batch_rows(
            first.batch_id, first.log_epoch, topic,
            {p.partition: (p.from_offset, p.to_offset) for p in parts},
        )
        table = table_for(_ROLLBACK_INSERT, {
            "batch_id": [p.batch_id for p in parts],
            "log_epoch": [p.log_epoch for p in parts],
            "topic": [topic] * len(parts),
            "partition": [p.partition for p in parts],
            "from_offset": [p.from_offset for p in parts],
            "to_offset": [p.to_offset for p in parts],
            "consumed": [p.consumed for p in parts],
            "reason": [reason] * len(parts),
        })
        self._insert_wire(_ROLLBACK_INSERT, table, f"{first.batch_id}:rollback")

    def rolled_back_batches(self) -> list[dict[str, Any]]:
        """Every rolled-back batch range, oldest first."""
        return self._rows(
            f"SELECT batch_id, log_epoch, topic, partition, from_offset, to_offset, consumed, "
            f"reason, toUnixTimestamp64Milli(rolled_back_at) rolled_back_at_ms "
            f"FROM {self.database}.batch_rollbacks "
            f"ORDER BY rolled_back_at, batch_id, partition LIMIT 1 BY batch_id, partition"
        )

    def committed_offsets(self, log_epoch: str, topic: str) -> dict[int, int]:
        """Per partition, one past the highest offset of a done batch."""
        rows = self._rows(
            f"SELECT partition, max(to_offset) + 1 AS next FROM {self.database}.batches "
            f"WHERE log_epoch = {{e:String}} AND topic = {{t:String}} AND state = 'done' "
            f"GROUP BY partition",
            {"e": log_epoch, "t": topic},
        )
        return {r["partition"]: r["next"] for r in rows}

    def partition_counts(self, log_epoch: str | None = None) -> list[PartitionCounts]:
        """Counters summed over done batches, per topic and partition."""
        where = "state = 'done'" + (" AND log_epoch = {e:String}" if log_epoch else "")
        rows = self._rows(
            f"SELECT topic, partition, sum(consumed) c, sum(stored) s, sum(duplicates) d, "
            f"sum(dead_letters) l, max(to_offset) + 1 n FROM {self.database}.batches "
            f"WHERE {where} GROUP BY topic, partition ORDER BY topic, partition",
            {"e": log_epoch} if log_epoch else None,
        )
        return [
            PartitionCounts(r["topic"], r["partition"], r["c"], r["s"], r["d"], r["l"], r["n"])
            for r in rows
        ]

    def dedup_index_stats(self) -> dict[str, Any]:
        """Keys in the dedup index and their size on disk (the record of truth for dedup)."""
        row = self._query(
            "SELECT sum(rows) AS keys, sum(bytes_on_disk) AS bytes FROM system.parts "
            "WHERE database = {db:String} AND table = 'dedup_keys' AND active",
            {"db": self.database},
        ).to_pylist()[0]
        keys, size = int(row["keys"] or 0), int(row["bytes"] or 0)
        return {"keys": keys, "bytes_on_disk": size,
                "bytes_per_key": round(size / keys, 2) if keys else None}

    def reconcile(self) -> list[dict[str, Any]]:
        """Per (log epoch, topic, partition): the manifest's counts and the tables' own counts.

        Stored and dead-lettered counts are recounted from the ``events`` and ``dead_letters``
        rows of committed batches, independently of the counters the manifest holds.
        """
        db = self.database
        return self._rows(
            f"WITH done AS (SELECT batch_id, log_epoch, topic, partition, from_offset, "
            f"to_offset, consumed, stored, duplicates, dead_letters FROM {db}.batches "
            f"WHERE state = 'done'), "
            f"ev AS (SELECT batch_id, source_partition AS partition, "
            f"uniqExact(source_offset) AS n FROM {db}.events "
            f"WHERE batch_id IN (SELECT batch_id FROM done) GROUP BY batch_id, partition), "
            f"dl AS (SELECT batch_id, source_partition AS partition, count() AS n "
            f"FROM {db}.dead_letters WHERE batch_id IN (SELECT batch_id FROM done) "
            f"GROUP BY batch_id, partition) "
            f"SELECT d.log_epoch AS log_epoch, d.topic AS topic, d.partition AS partition, "
            f"sum(d.consumed) AS consumed, sum(d.stored) AS stored, "
            f"sum(d.duplicates) AS duplicates, sum(d.dead_letters) AS dead_letters, "
            f"sum(ev.n) AS stored_rows, sum(dl.n) AS dead_letter_rows, "
            f"min(d.from_offset) AS first_offset, max(d.to_offset) AS last_offset, "
            f"count() AS batches "
            f"FROM done AS d "
            f"LEFT JOIN ev ON ev.batch_id = d.batch_id AND ev.partition = d.partition "
            f"LEFT JOIN dl ON dl.batch_id = d.batch_id AND dl.partition = d.partition "
            f"GROUP BY log_epoch, topic, partition ORDER BY log_epoch, topic, partition"
        )


_ROLLBACK_INSERT = ddl.InsertSpec(
    table="batch_rollbacks",
    columns=(
        "batch_id", "log_epoch", "topic", "partition", "from_offset", "to_offset", "consumed",
        "reason", "rolled_back_at",
    ),
    wire_columns=(
        ("batch_id", "String"), ("log_epoch", "String"), ("topic", "String"),
        ("partition", "UInt32"), ("from_offset", "UInt64"), ("to_offset", "UInt64"),
        ("consumed", "UInt64"), ("reason", "String"),
    ),
    select=(
        "batch_id", "log_epoch", "topic", "partition", "from_offset", "to_offset", "consumed",
        "reason", "now64(3, 'UTC')",
    ),
)
