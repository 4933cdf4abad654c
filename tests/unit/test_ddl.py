"""SQL text of the schema and insert objects in :mod:`sinks.ddl` (pure: no database).

The contract tests (tests/integration/test_store_contract.py) prove both ClickHouse backends
accept this text; these tests pin its shape and its internal consistency.
"""

from __future__ import annotations

import re

import pytest

from sinks import ddl
from sinks.sql_catalog import _REVOCATION_INSERT
from sinks.sql_store import _API_KEY_INSERT, _CATALOG_INSERT, _ORG_INSERT, _ROLLBACK_INSERT

TABLES = {table.name: table for table in ddl.ALL_TABLES}
INSERT_SPECS = [
    value for value in vars(ddl).values() if isinstance(value, ddl.InsertSpec)
] + [_CATALOG_INSERT, _ORG_INSERT, _API_KEY_INSERT, _REVOCATION_INSERT, _ROLLBACK_INSERT]
BATCH_INSERT_TABLES = (
    "events", "usage_rollups", "unique_rollups", "event_values", "dead_letters", "dedup_keys",
    "batches", "batch_begins", "batch_rollbacks",
)

_COLUMN_LINE = re.compile(r"^\s+([A-Za-z_][A-Za-z0-9_]*)\s+\S", re.MULTILINE)
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'")
_IDENTIFIER = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\b(\s*\()?")
_SQL_WORDS = {"NULL", "AS"}


def table_columns(table: ddl.Table) -> list[str]:
    """Column names declared in the ``(...)`` part of a CREATE body (one column per line)."""
    columns_part = table.body[: table.body.index(") ENGINE")]
    return _COLUMN_LINE.findall(columns_part)


def referenced_identifiers(expr: str) -> set[str]:
    """Bare identifiers of a select expression: not function names, not inside '...' literals."""
    without_literals = _STRING_LITERAL.sub("''", expr)
    return {
        name
        for name, call in _IDENTIFIER.findall(without_literals)
        if not call and not name.isdigit() and name.upper() not in _SQL_WORDS
    }


def spec_id(spec: ddl.InsertSpec) -> str:
    return spec.table


# --- InsertSpec text ---------------------------------------------------------------------------


def test_small_spec_sql_text_is_exact() -> None:
    spec = ddl.InsertSpec(
        table="things",
        columns=("id", "created_at"),
        wire_columns=(("id", "String"), ("created_at_ms", "Int64")),
        select=("id", "fromUnixTimestamp64Milli(created_at_ms, 'UTC')"),
    )
    assert spec.sql("db1", "Python(wire_table)") == (
        "INSERT INTO db1.things (id, created_at) "
        "SELECT id, fromUnixTimestamp64Milli(created_at_ms, 'UTC') FROM Python(wire_table)"
    )
    assert spec.wire_names == ("id", "created_at_ms")
    assert spec.wire_structure == "id String, created_at_ms Int64"


def test_dedup_keys_insert_sql_text_is_exact() -> None:
    assert ddl.DEDUP_KEYS_INSERT.sql("meterline", "wire") == (
        "INSERT INTO meterline.dedup_keys "
        "(identity, log_epoch, source_topic, source_partition, source_offset, seen_at) "
        "SELECT identity, log_epoch, source_topic, source_partition, source_offset, "
        "fromUnixTimestamp64Milli(seen_at_ms, 'UTC') FROM wire"
    )
    assert ddl.DEDUP_KEYS_INSERT.wire_structure == (
        "identity FixedString(16), log_epoch String, source_topic String, "
        "source_partition UInt32, source_offset UInt64, seen_at_ms Int64"
    )


def test_spec_with_mismatched_columns_and_exprs_is_refused() -> None:
    with pytest.raises(ValueError, match="2 columns, 1 exprs"):
        ddl.InsertSpec(table="t", columns=("a", "b"), wire_columns=(("a", "String"),),
                       select=("a",))


def test_every_insert_spec_is_collected() -> None:
    # schema_migrations is written by sinks.migrations with VALUES
    assert {spec.table for spec in INSERT_SPECS} == set(TABLES) - {"schema_migrations"}


@pytest.mark.parametrize("spec", INSERT_SPECS, ids=spec_id)
def test_spec_columns_match_its_table(spec: ddl.InsertSpec) -> None:
    assert spec.table in TABLES
    declared = table_columns(TABLES[spec.table])
    assert len(spec.columns) == len(spec.select)
    assert len(set(spec.columns)) == len(spec.columns), "duplicate target column"
    missing = [c for c in spec.columns if c not in declared]
    assert not missing, f"{spec.table}: columns not in CREATE body: {missing}"
    # Every column is written explicitly: none silently falls back to its type's default.
    assert set(spec.columns) == set(declared)


@pytest.mark.parametrize("spec", INSERT_SPECS, ids=spec_id)
def test_spec_select_uses_only_declared_wire_columns(spec: ddl.InsertSpec) -> None:
    wire_names = spec.wire_names
    assert len(set(wire_names)) == len(wire_names), "duplicate wire column"
    used: set[str] = set()
    for expr in spec.select:
        used |= referenced_identifiers(expr)
    undeclared = used - set(wire_names)
    assert not undeclared, f"{spec.table}: select reads undeclared wire columns {undeclared}"
    unused = [name for name in wire_names if name not in used]
    assert not unused, f"{spec.table}: wire columns never selected: {unused}"


def test_identifier_parser_ignores_functions_literals_and_numbers() -> None:
    expr = (
        "CAST(JSONExtractKeysAndValues(assumeNotNull(grouped_by_json), 'String'), "
        "'Map(String, String)')"
    )
    assert referenced_identifiers(expr) == {"grouped_by_json"}
    assert referenced_identifiers(
        "if(aggregation_type = 'unique_count_agg', NULL, toDecimal128OrNull(value, 12))"
    ) == {"aggregation_type", "value"}


# --- Table text --------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ddl.ALL_TABLES, ids=lambda t: t.name)
def test_create_sql_is_idempotent_and_qualified(table: ddl.Table) -> None:
    sql = table.create_sql("analytics_db")
    assert "IF NOT EXISTS" in sql
    assert "analytics_db" in sql
    assert sql.startswith(f"CREATE TABLE IF NOT EXISTS analytics_db.{table.name} (")
    assert "ENGINE = MergeTree" in sql
    assert "ORDER BY" in sql


@pytest.mark.parametrize("table", ddl.ALL_TABLES, ids=lambda t: t.name)
def test_order_by_uses_declared_columns(table: ddl.Table) -> None:
    order_by = re.search(r"ORDER BY (\([^)]*\)|\w+)", table.body)
    assert order_by is not None
    keys = [key.strip() for key in order_by.group(1).strip("()").split(",")]
    assert set(keys) <= set(table_columns(table))


def test_table_names_are_unique() -> None:
    assert len(TABLES) == len(ddl.ALL_TABLES)


@pytest.mark.parametrize("name", BATCH_INSERT_TABLES)
def test_batch_insert_tables_keep_a_dedup_window(name: str) -> None:
    body = TABLES[name].body
    assert "non_replicated_deduplication_window" in body
    assert f"non_replicated_deduplication_window = {ddl.DEDUP_WINDOW_BLOCKS}" in body
    assert ddl.DEDUP_WINDOW_BLOCKS >= 1000


def test_events_columns_are_the_expected_ones() -> None:
    assert table_columns(ddl.EVENTS) == list(ddl.EVENTS_INSERT.columns)
    assert len(table_columns(ddl.EVENTS)) == 21  # SPEC §3 enriched row + source position + batch id
