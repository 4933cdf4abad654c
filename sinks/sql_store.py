"""The store's SQL, shared by the chdb and ClickHouse-server backends.

:class:`SqlStore` implements :class:`sinks.store.Store`: the write path (schema, inserts and
their dry runs, a batch's parts and manifest markers) here, and the SQL of each part of the
store in its own module (:mod:`sinks.sql_batches`, :mod:`sinks.sql_usage`,
:mod:`sinks.sql_catalog`, :mod:`sinks.sql_dead_letters`), on the backend primitives of
:mod:`sinks.sql_base`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from sinks import ddl, migrations
from sinks.batch_tables import PART_INSERTS, EncodedBatch
from sinks.sql_base import SqlBase
from sinks.sql_batches import _ROLLBACK_INSERT, BatchSql
from sinks.sql_catalog import _API_KEY_INSERT, _CATALOG_INSERT, _ORG_INSERT, CatalogSql
from sinks.sql_dead_letters import DeadLetterSql
from sinks.sql_usage import UsageSql
from sinks.wire import batches_table

__all__ = [
    "_API_KEY_INSERT", "_CATALOG_INSERT", "_ORG_INSERT", "_ROLLBACK_INSERT", "SqlStore",
]


class SqlStore(BatchSql, UsageSql, CatalogSql, DeadLetterSql, SqlBase):
    """Implements :class:`sinks.store.Store` on top of the backend primitives."""

    def __init__(self, database: str):
        self.database = database
        self._structures: dict[str, str] = {}  # table → column structure (check_insert)

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
