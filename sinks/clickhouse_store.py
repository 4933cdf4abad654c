"""The store on a ClickHouse server, through clickhouse-connect (HTTP).

Wire tables travel as ClickHouse "external data" in ArrowStream format, so inserts run the
same ``INSERT … SELECT`` text as the chdb backend.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.external import ExternalData

from sinks.ddl import InsertSpec
from sinks.sql_store import SqlStore
from sinks.store import StoreError, store_error
from sinks.wire import identity_array


def _arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


class ClickHouseStore(SqlStore):
    """:class:`sinks.store.Store` backed by a ClickHouse server at ``url``."""

    def __init__(self, url: str, database: str = "meterline"):
        super().__init__(database)
        parsed = urlparse(url)
        try:
            self._client = clickhouse_connect.get_client(
                host=parsed.hostname or "localhost",
                port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
                username=parsed.username or "default",
                password=parsed.password or "",
                secure=parsed.scheme == "https",
                autogenerate_session_id=False,
            )
        except Exception as exc:
            raise StoreError(f"cannot connect to ClickHouse at {parsed.hostname}: {exc}") from exc

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        try:
            return self._client.query_arrow(sql, parameters=params or None, use_strings=True)
        except Exception as exc:
            raise store_error(str(exc)) from exc

    def _command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=params or None)
        except Exception as exc:
            raise store_error(str(exc)) from exc

    def _insert_wire(
        self, spec: InsertSpec, wire: pa.Table, token: str | None, target: str | None = None
    ) -> None:
        data = ExternalData(
            file_name="wire",
            data=_arrow_stream(wire.select(list(spec.wire_names))),
            fmt="ArrowStream",
            structure=spec.wire_structure,
        )
        settings = {"insert_deduplication_token": token} if token else None
        try:
            self._client.command(
                spec.sql(self.database, "wire", target), external_data=data, settings=settings
            )
        except Exception as exc:
            raise store_error(f"insert into {spec.table} failed: {exc}") from exc

    def _query_with_keys(self, sql: str, keys: list[bytes], params: dict[str, Any]) -> pa.Table:
        data = ExternalData(
            file_name="keys",
            data=_arrow_stream(pa.table({"identity": identity_array(keys)})),
            fmt="ArrowStream",
            structure="identity FixedString(16)",
        )
        try:
            return self._client.query_arrow(
                sql.replace("{keys}", "keys"), parameters=params, external_data=data
            )
        except Exception as exc:
            raise store_error(str(exc)) from exc

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
