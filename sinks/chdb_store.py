"""The store on chdb: the ClickHouse engine in-process, on a data directory.

One process may open a data directory at a time (chdb locks it); one session is shared by
every thread of that process, one query at a time: two concurrent queries, one of them reading
a ``Python()`` table, were seen to deadlock inside chdb, so every call holds ``_lock``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
from chdb import session as chdb_session

from sinks.ddl import InsertSpec
from sinks.sql_store import SqlStore
from sinks.store import StoreError, store_error
from sinks.wire import identity_array

# chdb hands query parameters to ClickHouse as they are, and ClickHouse reads a parameter's
# value in its escaped text form (as the HTTP interface's ``param_<name>``): a backslash starts
# an escape sequence, a tab or a newline ends the value. So ``a\b`` was read as ``a`` + backspace
# and a trailing backslash failed the query. clickhouse-connect escapes them for the server
# backend; chdb does not, so this does, for every string parameter of every query.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n"})


def escape_params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters in ClickHouse's escaped text form (strings only; None stays None)."""
    if not params:
        return None
    return {k: v.translate(_ESCAPES) if isinstance(v, str) else v for k, v in params.items()}


class ChdbStore(SqlStore):
    """:class:`sinks.store.Store` backed by a chdb session on ``data_dir``."""

    def __init__(self, data_dir: Path | str, database: str = "meterline"):
        super().__init__(database)
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._session = chdb_session.Session(str(path))
        except Exception as exc:  # chdb raises plain RuntimeError subclasses
            raise StoreError(
                f"cannot open chdb data directory {path} (is another Meterline process using "
                f"it? chdb allows one process per directory): {exc}"
            ) from exc
        self._closed = False
        self._lock = threading.RLock()

    def _run(self, sql: str, fmt: str, params: dict[str, Any] | None, **frame: object) -> object:
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            try:
                return self._session.query(sql, fmt, params=escape_params(params))
            except Exception as exc:
                raise store_error(str(exc)) from exc

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        table: pa.Table = self._run(sql, "ArrowTable", params)
        return table

    def _command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def _insert_wire(
        self, spec: InsertSpec, wire: pa.Table, token: str | None, target: str | None = None
    ) -> None:
        # chdb's Python() table function resolves ``wire_table`` in this frame's locals.
        wire_table = wire.select(list(spec.wire_names))  # noqa: F841
        sql = spec.sql(self.database, "Python(wire_table)", target)
        params = None
        if token:
            sql += " SETTINGS insert_deduplication_token = {token:String}"
            params = {"token": token}
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            try:
                self._session.query(sql, "CSV", params=escape_params(params))
            except Exception as exc:
                raise store_error(f"insert into {spec.table} failed: {exc}") from exc

    def _query_with_keys(self, sql: str, keys: list[bytes], params: dict[str, Any]) -> pa.Table:
        key_table = pa.table({"identity": identity_array(keys)})  # noqa: F841
        full_sql = sql.replace("{keys}", "Python(key_table)")
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            try:
                return self._session.query(full_sql, "ArrowTable", params=escape_params(params))
            except Exception as exc:
                raise store_error(str(exc)) from exc

    def close(self) -> None:
        """Close the session and release the data directory lock."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._session.close()
