"""Versioned forward migrations of the ClickHouse schema, applied at start (chdb and server alike).

The tables of :mod:`sinks.ddl` are the latest schema. A database records the versions applied
to it in ``schema_migrations``:

* a new database gets the latest tables and every version at once;
* a database written before migrations existed (release 0.1.0: tables, no
  ``schema_migrations``) is at version 1;
* any other database gets each version it lacks, in order. A migration runs against the
  schema as the version before it left it, and is written so that running it again after a
  crash half-way through finishes the job.

Tables added by a version are created by ``CREATE TABLE IF NOT EXISTS`` after the migrations,
with their latest definition. To change the schema: change :mod:`sinks.ddl`, then add a
:class:`Migration` here that brings a database of the previous version to it. The test
``tests/integration/test_migrations.py`` checks that a migrated database of the previous
release has exactly the columns of a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sinks import ddl

log = logging.getLogger("meterline.migrations")

LEGACY_VERSION = 1  # release 0.1.0, before migrations


class SchemaTarget(Protocol):
    """The part of a store that migrations use."""

    database: str

    def _command(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> str: ...


@dataclass(frozen=True)
class Migration:
    """One schema version: ``apply`` brings a database of ``version - 1`` to ``version``."""

    version: int
    name: str
    apply: Callable[[SchemaTarget], None]


def _table_exists(store: SchemaTarget, table: str) -> bool:
    return store.scalar(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": store.database, "t": table},
    ) == "1"


def _column_exists(store: SchemaTarget, table: str, column: str) -> bool:
    return store.scalar(
        "SELECT count() FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "AND name = {c:String}",
        {"db": store.database, "t": table, "c": column},
    ) == "1"


def _wide_sums(store: SchemaTarget) -> None:
    """Roll-up sums as Decimal(76, 12): two valid values of 9e25 no longer overflow a bucket."""
    store._command(
        f"ALTER TABLE {store.database}.usage_rollups "
        f"MODIFY COLUMN value_sum Decimal(76, 12), "
        f"MODIFY COLUMN precise_total_amount_cents Decimal(76, 12) "
        f"SETTINGS mutations_sync = 2"
    )


def _hashed_api_keys(store: SchemaTarget) -> None:
    """Organizations lose their plain-text key column: each key moves to ``api_keys`` as a
    SHA-256 digest. The table is rebuilt and the old one dropped with SYNC, so no data part
    holding a key in plain text stays on disk."""
    db = store.database
    store._command(ddl.API_KEYS.create_sql(db))
    rebuilt = "organizations_rebuilt"
    if _table_exists(store, "organizations") and _column_exists(store, "organizations", "api_key"):
        already = store.scalar(f"SELECT count() FROM {db}.api_keys WHERE name = 'migrated'")
        if already == "0":
            store._command(
                f"INSERT INTO {db}.api_keys "
                f"(id, organization_id, name, role, key_hash, created_at) "
                f"SELECT concat('key_', substring(lower(hex(SHA256(concat('id:', api_key)))), 1, "
                f"16)), id, 'migrated', 'admin', lower(hex(SHA256(api_key))), created_at "
                f"FROM {db}.organizations"
            )
        store._command(f"DROP TABLE IF EXISTS {db}.{rebuilt} SYNC")
        store._command(ddl.Table(rebuilt, ddl.ORGANIZATIONS.body).create_sql(db))
        store._command(
            f"INSERT INTO {db}.{rebuilt} (id, name, created_at) "
            f"SELECT id, name, created_at FROM {db}.organizations"
        )
        store._command(f"DROP TABLE {db}.organizations SYNC")
    if _table_exists(store, rebuilt):  # also after a crash between the DROP and the RENAME
        store._command(f"RENAME TABLE {db}.{rebuilt} TO {db}.organizations")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "roll-up sums as Decimal(76, 12)", _wide_sums),
    Migration(3, "API keys stored as SHA-256 digests", _hashed_api_keys),
)

LATEST_VERSION = MIGRATIONS[-1].version


def applied_versions(store: SchemaTarget) -> set[int]:
    """The versions recorded in ``schema_migrations`` (empty when there is none)."""
    if not _table_exists(store, "schema_migrations"):
        return set()
    text = store.scalar(
        f"SELECT arrayStringConcat(groupArray(toString(version)), ',') "
        f"FROM {store.database}.schema_migrations"
    )
    return {int(v) for v in text.split(",") if v}


def _record(store: SchemaTarget, versions: list[tuple[int, str]]) -> None:
    if versions:
        values = ", ".join(f"({v}, {{n{v}:String}}, now64(3, 'UTC'))" for v, _ in versions)
        store._command(
            f"INSERT INTO {store.database}.schema_migrations (version, name, applied_at) "
            f"VALUES {values}",
            {f"n{v}": name for v, name in versions},
        )


def migrate(store: SchemaTarget) -> list[int]:
    """Bring the database to the latest schema; returns the versions applied now."""
    db = store.database
    store._command(f"CREATE DATABASE IF NOT EXISTS {db}")
    applied = applied_versions(store)
    fresh = not applied and not _table_exists(store, "events")
    if fresh:
        for table in ddl.ALL_TABLES:
            store._command(table.create_sql(db))
        _record(store, [(LEGACY_VERSION, "release 0.1.0")]
                + [(m.version, m.name) for m in MIGRATIONS])
        return [m.version for m in MIGRATIONS]
    store._command(ddl.SCHEMA_MIGRATIONS.create_sql(db))
    if not applied:
        applied = {LEGACY_VERSION}
        _record(store, [(LEGACY_VERSION, "release 0.1.0")])
    done = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        log.warning("schema migration %d: %s", migration.version, migration.name)
        migration.apply(store)
        _record(store, [(migration.version, migration.name)])
        done.append(migration.version)
    for table in ddl.ALL_TABLES:  # tables added since: created with their latest definition
        store._command(table.create_sql(db))
    return done
