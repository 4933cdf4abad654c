"""What every SQL part of the store stands on: the backend's primitives.

A backend (:mod:`sinks.chdb_store`, :mod:`sinks.clickhouse_store`) supplies ``_query`` (rows
as an Arrow table), ``_command``, ``_insert_wire`` (an Arrow wire table through an
:class:`~sinks.ddl.InsertSpec`, with a dedup token) and ``_query_with_keys``. The store's
SQL is split by what it serves (:mod:`sinks.sql_batches`, :mod:`sinks.sql_usage`,
:mod:`sinks.sql_catalog`, :mod:`sinks.sql_dead_letters`), each on this base.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sinks import ddl


@dataclass(frozen=True)
class Query:
    """A named read query. ``{db}`` in its text stands for the database; parameters are
    ClickHouse's ``{name:Type}`` placeholders, passed apart (never formatted in)."""

    name: str
    text: str

    def sql(self, database: str) -> str:
        """The text to run against ``database``."""
        return self.text.replace("{db}", database)


class SqlBase(abc.ABC):
    """The backend primitives, and the database every query names."""

    database: str

    @abc.abstractmethod
    def _query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run a SELECT and return its rows."""

    @abc.abstractmethod
    def _command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""

    @abc.abstractmethod
    def _insert_wire(
        self, spec: ddl.InsertSpec, wire: pa.Table, token: str | None, target: str | None = None
    ) -> None:
        """Insert ``wire`` through ``spec``; a repeated non-empty ``token`` is a no-op.
        ``target`` replaces the spec's table (see :meth:`sinks.ddl.InsertSpec.sql`)."""

    @abc.abstractmethod
    def _query_with_keys(self, sql: str, keys: list[bytes], params: dict[str, Any]) -> pa.Table:
        """Run ``sql`` where ``{keys}`` names a one-column table ``identity FixedString(16)``."""

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as dicts."""
        rows: list[dict[str, Any]] = self._query(sql, params).to_pylist()
        return rows

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> str:
        """First column of the first row, as text ("" when there is no row)."""
        table = self._query(sql, params)
        if not table.num_rows:
            return ""
        return str(table.column(0)[0].as_py())
