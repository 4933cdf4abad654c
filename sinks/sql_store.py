"""The store's SQL, shared by the chdb and ClickHouse-server backends.

A backend supplies three primitives: ``_query`` (rows as an Arrow table), ``_command`` and
``_insert_wire`` (an Arrow wire table through an :class:`InsertSpec`, with a dedup token).
"""

from __future__ import annotations

import abc
import base64
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa

from aggregation.usage_aggregate import UsageAggregate
from sinks import ddl, migrations
from sinks.batch_tables import PART_INSERTS, EncodedBatch
from sinks.store import (
    IDENTITY_BYTES,
    ApiKeyRecord,
    CatalogDoc,
    LogPosition,
    OpenBatch,
    Organization,
    PartitionCounts,
)
from sinks.wire import batches_table, table_for

# One subscription's buckets in [f, t) (milliseconds); params o, s, f, t.
_BUCKET_WINDOW = (
    "WHERE organization_id = {o:String} AND subscription_id = {s:String} "
    "AND bucket_start >= toDateTime(intDiv({f:Int64}, 1000), 'UTC') "
    "AND bucket_start < toDateTime(intDiv({t:Int64}, 1000), 'UTC')"
)


def _groups(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(orjson.loads(text or "{}").items()))


def _fee_key(row: dict) -> tuple:
    """(charge_id, charge_filter_id, grouped_by) of a result row."""
    return (row["charge_id"], row["charge_filter_id"], _groups(row["grouped_by"]))


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


class SqlStore(abc.ABC):
    """Implements :class:`sinks.store.Store` on top of three backend primitives."""

    def __init__(self, database: str):
        self.database = database
        self._structures: dict[str, str] = {}  # table → column structure (check_insert)

    # --- primitives ----------------------------------------------------------------------------
    @abc.abstractmethod
    def _query(self, sql: str, params: dict | None = None) -> pa.Table:
        """Run a SELECT and return its rows."""

    @abc.abstractmethod
    def _command(self, sql: str, params: dict | None = None) -> None:
        """Run a statement that returns nothing."""

    @abc.abstractmethod
    def _insert_wire(
        self, spec: ddl.InsertSpec, wire: pa.Table, token: str | None, target: str | None = None
    ) -> None:
        """Insert ``wire`` through ``spec``; a repeated non-empty ``token`` is a no-op.
        ``target`` replaces the spec's table (see :meth:`sinks.ddl.InsertSpec.sql`)."""

    # --- schema --------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create the database and every table if missing; apply pending migrations."""
        migrations.migrate(self)

    def insert(self, spec: ddl.InsertSpec, wire: pa.Table, token: str) -> None:
        """Insert a wire table idempotently (by ``token``); empty tables are skipped."""
        if wire.num_rows:
            self._insert_wire(spec, wire, token)

    def check_insert(self, spec: ddl.InsertSpec, wire: pa.Table) -> None:
        """Run ``spec``'s INSERT into a ``null`` table of the same columns: nothing is written,
        but every conversion the real INSERT does is done. Raises
        :class:`~sinks.store.StoreDataError` when the engine rejects the rows."""
        if not wire.num_rows:
            return
        structure = self._structures.get(spec.table)
        if structure is None:
            rows = self._query(
                "SELECT name, type FROM system.columns "
                "WHERE database = {db:String} AND table = {t:String}",
                {"db": self.database, "t": spec.table},
            ).to_pylist()
            types = {r["name"]: r["type"] for r in rows}
            structure = ", ".join(f"{c} {types[c]}" for c in spec.columns)
            self._structures[spec.table] = structure
        escaped = structure.replace("\\", "\\\\").replace("'", "\\'")
        self._insert_wire(spec, wire, None, target=f"FUNCTION null('{escaped}')")

    def write_part(self, batch: EncodedBatch, part: str, token: str) -> None:
        """Insert one part of a batch (see :mod:`sinks.batch_tables`) idempotently."""
        self.insert(PART_INSERTS[part], batch.tables[part], token)

    def check_part(self, batch: EncodedBatch, part: str) -> None:
        """Dry-run one part's INSERT (:meth:`check_insert`)."""
        self.check_insert(PART_INSERTS[part], batch.tables[part])

    def write_marker(
        self, batch_id: str, log_epoch: str, topic: str, state: str,
        tallies: Mapping[int, Any], written_at_ms: int,
    ) -> None:
        """A manifest row per partition range of a batch ('begin' or 'done'), idempotently
        (token ``{batch_id}:{state}``)."""
        table = batches_table(batch_id=batch_id, log_epoch=log_epoch, topic=topic, state=state,
                              tallies=tallies, written_at_ms=written_at_ms)
        self.insert(ddl.manifest_insert(state), table, f"{batch_id}:{state}")

    def scalar(self, sql: str, params: dict | None = None) -> str:
        """First column of the first row, as text ("" when there is no row)."""
        table = self._query(sql, params)
        if not table.num_rows:
            return ""
        return str(table.column(0)[0].as_py())

    # --- dedup and batches ---------------------------------------------------------------------
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

    @abc.abstractmethod
    def _query_with_keys(self, sql: str, keys: list[bytes], params: dict) -> pa.Table:
        """Run ``sql`` where ``{keys}`` names a one-column table ``identity FixedString(16)``."""

    def open_batches(self, topic: str) -> list[OpenBatch]:
        """Begun batches of ``topic``, of any log epoch, neither done nor rolled back."""
        # 'begin' markers live in batch_begins ('begin' rows in batches: an older data dir).
        markers = " UNION ALL ".join(
            f"SELECT batch_id, log_epoch, partition, from_offset, to_offset, consumed, state, "
            f"written_at FROM {self.database}.{table} WHERE topic = {{t:String}}"
            for table in ("batch_begins", "batches")
        )
        rows = self._query(
            f"SELECT batch_id, log_epoch, partition, from_offset, to_offset, "
            f"max(consumed) consumed, toUnixTimestamp64Milli(min(written_at)) begun_at_ms "
            f"FROM ({markers}) "
            f"WHERE batch_id NOT IN (SELECT batch_id FROM {self.database}.batch_rollbacks) "
            f"GROUP BY batch_id, log_epoch, partition, from_offset, to_offset "
            f"HAVING countIf(state = 'done') = 0 ORDER BY from_offset",
            {"t": topic},
        ).to_pylist()
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

    def rolled_back_batches(self) -> list[dict]:
        """Every rolled-back batch range, oldest first."""
        return self._query(
            f"SELECT batch_id, log_epoch, topic, partition, from_offset, to_offset, consumed, "
            f"reason, toUnixTimestamp64Milli(rolled_back_at) rolled_back_at_ms "
            f"FROM {self.database}.batch_rollbacks "
            f"ORDER BY rolled_back_at, batch_id, partition LIMIT 1 BY batch_id, partition"
        ).to_pylist()

    def committed_offsets(self, log_epoch: str, topic: str) -> dict[int, int]:
        """Per partition, one past the highest offset of a done batch."""
        rows = self._query(
            f"SELECT partition, max(to_offset) + 1 AS next FROM {self.database}.batches "
            f"WHERE log_epoch = {{e:String}} AND topic = {{t:String}} AND state = 'done' "
            f"GROUP BY partition",
            {"e": log_epoch, "t": topic},
        ).to_pylist()
        return {r["partition"]: r["next"] for r in rows}

    def partition_counts(self, log_epoch: str | None = None) -> list[PartitionCounts]:
        """Counters summed over done batches, per topic and partition."""
        where = "state = 'done'" + (" AND log_epoch = {e:String}" if log_epoch else "")
        rows = self._query(
            f"SELECT topic, partition, sum(consumed) c, sum(stored) s, sum(duplicates) d, "
            f"sum(dead_letters) l, max(to_offset) + 1 n FROM {self.database}.batches "
            f"WHERE {where} GROUP BY topic, partition ORDER BY topic, partition",
            {"e": log_epoch} if log_epoch else None,
        ).to_pylist()
        return [
            PartitionCounts(r["topic"], r["partition"], r["c"], r["s"], r["d"], r["l"], r["n"])
            for r in rows
        ]

    def dedup_index_stats(self) -> dict:
        """Keys in the dedup index and their size on disk (the record of truth for dedup)."""
        row = self._query(
            "SELECT sum(rows) AS keys, sum(bytes_on_disk) AS bytes FROM system.parts "
            "WHERE database = {db:String} AND table = 'dedup_keys' AND active",
            {"db": self.database},
        ).to_pylist()[0]
        keys, size = int(row["keys"] or 0), int(row["bytes"] or 0)
        return {"keys": keys, "bytes_on_disk": size,
                "bytes_per_key": round(size / keys, 2) if keys else None}

    def reconcile(self) -> list[dict]:
        """Per (log epoch, topic, partition): the manifest's counts and the tables' own counts.

        Stored and dead-lettered counts are recounted from the ``events`` and ``dead_letters``
        rows of committed batches, independently of the counters the manifest holds.
        """
        db = self.database
        return self._query(
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
        ).to_pylist()

    # --- usage ---------------------------------------------------------------------------------
    def read_usage(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> list[UsageAggregate]:
        """Sum the pre-aggregated buckets of one subscription over ``[from_ms, to_ms)``."""
        rows = self._query(
            f"SELECT charge_id, charge_filter_id, grouped_by, any(aggregation_type) agg, "
            f"sum(events_count) n, toString(sum(value_sum)) s, toString(max(value_max)) mx, "
            f"toString(argMax(latest_value, (latest_timestamp, latest_offset))) lv, "
            f"toString(sum(precise_total_amount_cents)) p, toString(sum(value_time_sum)) vt "
            f"FROM {self.database}.usage_rollups "
            f"{_BUCKET_WINDOW} "
            f"GROUP BY charge_id, charge_filter_id, grouped_by",
            {"o": organization_id, "s": subscription_id, "f": from_ms, "t": to_ms},
        ).to_pylist()
        return [
            UsageAggregate(
                charge_id=r["charge_id"],
                charge_filter_id=r["charge_filter_id"],
                grouped_by=_groups(r["grouped_by"]),
                aggregation_type=r["agg"],
                events_count=r["n"],
                value_sum=Decimal(r["s"]),
                value_max=_dec(r["mx"]),
                latest_value=_dec(r["lv"]),
                precise_total_amount_cents=Decimal(r["p"]),
                value_time_sum=Decimal(r["vt"]),
            )
            for r in rows
        ]

    def read_daily_sums(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int,
        timezone: str,
    ) -> dict[tuple, list[tuple[str, Decimal]]]:
        """Per (charge, filter, group): Σ value per local day (``timezone``), for proration."""
        rows = self._query(
            f"SELECT charge_id, charge_filter_id, grouped_by, "
            f"toString(toDate(bucket_start, {{tz:String}})) day, toString(sum(value_sum)) s "
            f"FROM {self.database}.usage_rollups "
            f"{_BUCKET_WINDOW} "
            f"GROUP BY charge_id, charge_filter_id, grouped_by, day ORDER BY day",
            {"o": organization_id, "s": subscription_id, "f": from_ms, "t": to_ms,
             "tz": timezone},
        ).to_pylist()
        out: dict[tuple, list[tuple[str, Decimal]]] = {}
        for r in rows:
            key = _fee_key(r)
            out.setdefault(key, []).append((r["day"], Decimal(r["s"])))
        return out

    def read_unique(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> dict[tuple, tuple[int, int]]:
        """Per (charge, filter, group): values present at the end of the window, and events.

        A value is present when its last operation in the window (by timestamp, then log
        position) is an add.
        """
        rows = self._query(
            f"SELECT charge_id, charge_filter_id, grouped_by, countIf(last_add = 1) present, "
            f"sum(n) events FROM (SELECT charge_id, charge_filter_id, grouped_by, value, "
            f"argMax(latest_add, (latest_timestamp, latest_offset)) last_add, "
            f"sum(events_count) n FROM {self.database}.unique_rollups "
            f"{_BUCKET_WINDOW} "
            f"GROUP BY charge_id, charge_filter_id, grouped_by, value) "
            f"GROUP BY charge_id, charge_filter_id, grouped_by",
            {"o": organization_id, "s": subscription_id, "f": from_ms, "t": to_ms},
        ).to_pylist()
        return {
            _fee_key(r):
                (r["present"], r["events"])
            for r in rows
        }

    def read_event_values(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> dict[tuple, tuple[Decimal, ...]]:
        """Per (charge, filter, group): values of percentage charges in event order."""
        rows = self._query(
            f"SELECT charge_id, charge_filter_id, grouped_by, "
            f"arrayMap(x -> toString(x.3), "
            f"arraySort(groupArray((timestamp, source_offset, value)))) vals "
            f"FROM {self.database}.event_values "
            f"WHERE organization_id = {{o:String}} AND subscription_id = {{s:String}} "
            f"AND timestamp >= fromUnixTimestamp64Milli({{f:Int64}}, 'UTC') "
            f"AND timestamp < fromUnixTimestamp64Milli({{t:Int64}}, 'UTC') "
            f"GROUP BY charge_id, charge_filter_id, grouped_by",
            {"o": organization_id, "s": subscription_id, "f": from_ms, "t": to_ms},
        ).to_pylist()
        return {
            _fee_key(r):
                tuple(Decimal(v) for v in r["vals"])
            for r in rows
        }

    def mark_redriven(self, letters: list[dict]) -> None:
        """Record that these dead letters were re-published to the raw topic."""
        if letters:
            table = table_for(ddl.REDRIVES_INSERT, {
                "source_topic": [d["source_topic"] for d in letters],
                "source_partition": [d["source_partition"] for d in letters],
                "source_offset": [d["source_offset"] for d in letters],
            })
            self._insert_wire(ddl.REDRIVES_INSERT, table, None)

    def find_events(self, organization_id: str, transaction_id: str) -> list[dict]:
        """Enriched rows of one transaction id, newest first."""
        return self._query(
            f"SELECT organization_id, external_subscription_id, subscription_id, customer_id, "
            f"plan_id, code, transaction_id, toUnixTimestamp64Milli(timestamp) timestamp_ms, "
            f"value, properties, precise_total_amount_cents, charge_id, charge_filter_id, "
            f"toUnixTimestamp64Milli(ingested_at) ingested_at_ms "
            f"FROM {self.database}.events "
            f"WHERE organization_id = {{o:String}} AND transaction_id = {{t:String}} "
            f"ORDER BY ingested_at DESC LIMIT 100",
            {"o": organization_id, "t": transaction_id},
        ).to_pylist()

    # --- catalog and organizations -------------------------------------------------------------
    def put_catalog_docs(self, docs: list[CatalogDoc]) -> None:
        """Append versions; a doc without a version is numbered after the highest stored one."""
        if not docs:
            return
        next_version = int(
            self.scalar(f"SELECT max(version) FROM {self.database}.catalog_docs") or 0
        ) + 1
        versions = []
        for doc in docs:
            versions.append(doc.version or next_version)
            next_version = max(next_version, versions[-1]) + 1
        table = table_for(_CATALOG_INSERT, {
            "organization_id": [d.organization_id for d in docs],
            "kind": [d.kind for d in docs],
            "key": [d.key for d in docs],
            "version": versions,
            "body": [d.body for d in docs],
            "deleted": [int(d.deleted) for d in docs],
            "effective_at_ms": [d.effective_at_ms for d in docs],
        })
        self._insert_wire(_CATALOG_INSERT, table, None)

    def load_catalog_docs(self) -> list[CatalogDoc]:
        """The latest version of each (organization, kind, key)."""
        latest: dict[tuple[str, str, str], CatalogDoc] = {}
        for doc in self.load_catalog_history():
            latest[(doc.organization_id, doc.kind, doc.key)] = doc
        return [latest[k] for k in sorted(latest)]

    def load_catalog_history(self) -> list[CatalogDoc]:
        """Every version, oldest first."""
        rows = self._query(
            f"SELECT organization_id, kind, key, version, body, deleted, "
            f"toUnixTimestamp64Milli(updated_at) at_ms FROM {self.database}.catalog_docs "
            f"ORDER BY version"
        ).to_pylist()
        return [
            CatalogDoc(r["organization_id"], r["kind"], r["key"], r["body"], bool(r["deleted"]),
                       r["version"], r["at_ms"])
            for r in rows
        ]

    def ensure_organization(self, org_id: str, name: str) -> Organization:
        """Create ``org_id`` unless it exists; return the stored one."""
        for org in self.organizations():
            if org.id == org_id:
                return org
        wire = pa.table({"id": [org_id], "name": [name]})
        self._insert_wire(_ORG_INSERT, wire, None)
        return Organization(org_id, name)

    def organizations(self) -> list[Organization]:
        """Every organization, first created first (one row per id)."""
        rows = self._query(
            f"SELECT id, argMin(name, created_at) n "
            f"FROM {self.database}.organizations GROUP BY id ORDER BY id"
        ).to_pylist()
        return [Organization(r["id"], r["n"]) for r in rows]

    def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store an API key (its digest only)."""
        table = table_for(_API_KEY_INSERT, {
            "id": [record.id], "organization_id": [record.organization_id],
            "name": [record.name], "role": [record.role], "key_hash": [record.key_hash],
        })
        self._insert_wire(_API_KEY_INSERT, table, None)

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every API key (digests), oldest first."""
        rows = self._query(
            f"SELECT id, organization_id, name, role, key_hash FROM {self.database}.api_keys "
            f"ORDER BY created_at, id LIMIT 1 BY id"
        ).to_pylist()
        return [
            ApiKeyRecord(r["id"], r["organization_id"], r["name"], r["role"], r["key_hash"])
            for r in rows
        ]

    def _dead_letter_filters(
        self, *, error_code: str | None = None, organization_id: str | None = None,
        since_ms: int | None = None, until_ms: int | None = None,
        include_unattributed: bool = False, pending_only: bool = False,
        position: tuple[str, int, int] | None = None,
    ) -> tuple[str, dict]:
        """The WHERE clause and parameters of a dead-letter filter."""
        where = ["1"]
        params: dict = {}
        if error_code:
            where.append("error_code = {code:String}")
            params["code"] = error_code
        if organization_id:
            org_filter = "organization_id = {org:String}"
            if include_unattributed:
                org_filter = f"({org_filter} OR organization_id = '')"
            where.append(org_filter)
            params["org"] = organization_id
        if pending_only:
            where.append(
                f"(source_topic, source_partition, source_offset) NOT IN (SELECT source_topic, "
                f"source_partition, source_offset FROM {self.database}.redrives)"
            )
        if since_ms is not None:
            where.append("failed_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')")
            params["since"] = since_ms
        if until_ms is not None:
            where.append("failed_at < fromUnixTimestamp64Milli({until:Int64}, 'UTC')")
            params["until"] = until_ms
        if position is not None:
            where.append("source_topic = {st:String} AND source_partition = {sp:UInt32} "
                         "AND source_offset = {so:UInt64}")
            params.update(st=position[0], sp=position[1], so=position[2])
        return " AND ".join(where), params

    def dead_letters(
        self, *, limit: int = 1000, offset: int = 0, payload_limit: int | None = None,
        **filters,
    ) -> list[dict]:
        """Dead letters, newest first, filtered by reason, organization and failure time.

        ``include_unattributed`` adds letters with no organization (e.g. invalid JSON) to an
        organization filter; ``pending_only`` leaves out letters already re-driven; ``position``
        (topic, partition, offset) picks one letter. Rows ``offset`` to ``offset + limit``.
        ``payload_limit`` keeps the first bytes of each payload only (``payload_bytes`` is
        always the whole size).
        """
        where, params = self._dead_letter_filters(**filters)
        params.update(limit=limit, skip=offset)
        payload = "payload" if payload_limit is None else "substring(payload, 1, {pl:UInt32})"
        if payload_limit is not None:
            params["pl"] = payload_limit
        rows = self._query(
            f"SELECT organization_id, external_subscription_id, transaction_id, error_code, "
            f"error_message, base64Encode({payload}) payload_b64, length(payload) payload_bytes, "
            f"source_topic, source_partition, source_offset, "
            f"toUnixTimestamp64Milli(failed_at) failed_at_ms "
            f"FROM {self.database}.dead_letters WHERE {where} "
            f"ORDER BY failed_at DESC, source_partition, source_offset "
            f"LIMIT {{limit:UInt32}} OFFSET {{skip:UInt64}}",
            params,
        ).to_pylist()
        for row in rows:  # the original bytes, which need not be UTF-8
            row["payload"] = base64.b64decode(row.pop("payload_b64"))
        return rows

    def count_dead_letters(self, **filters) -> int:
        """How many dead letters :meth:`dead_letters` has for these filters (no limit)."""
        where, params = self._dead_letter_filters(**filters)
        return int(self.scalar(
            f"SELECT count() FROM {self.database}.dead_letters WHERE {where}", params
        ) or 0)


_CATALOG_INSERT = ddl.InsertSpec(
    table="catalog_docs",
    columns=("organization_id", "kind", "key", "version", "body", "deleted", "updated_at"),
    wire_columns=(
        ("organization_id", "String"), ("kind", "String"), ("key", "String"),
        ("version", "UInt64"), ("body", "String"), ("deleted", "UInt8"),
        ("effective_at_ms", "Int64"),
    ),
    select=(
        "organization_id", "kind", "key", "version", "body", "deleted",
        "if(effective_at_ms = 0, now64(3, 'UTC'), "
        "fromUnixTimestamp64Milli(effective_at_ms, 'UTC'))",
    ),
)

_ORG_INSERT = ddl.InsertSpec(
    table="organizations",
    columns=("id", "name", "created_at"),
    wire_columns=(("id", "String"), ("name", "String")),
    select=("id", "name", "now64(3, 'UTC')"),
)

_API_KEY_INSERT = ddl.InsertSpec(
    table="api_keys",
    columns=("id", "organization_id", "name", "role", "key_hash", "created_at"),
    wire_columns=(
        ("id", "String"), ("organization_id", "String"), ("name", "String"), ("role", "String"),
        ("key_hash", "String"),
    ),
    select=("id", "organization_id", "name", "role", "key_hash", "now64(3, 'UTC')"),
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
