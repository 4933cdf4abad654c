"""ClickHouse schema and insert statements, as small objects whose SQL text is unit-tested.

The same text runs on chdb and on a ClickHouse server. Inserts read a "wire" table (Arrow
columns the worker builds cheaply: strings, ints) and convert in SQL (decimals, maps, dates),
so Python never builds Decimal or Map Arrow arrays on the hot path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Every table that receives batch inserts remembers the tokens of its last N blocks, so a batch
# replayed after a crash (same insert_deduplication_token) is ignored. N must exceed the number of
# inserts that can be in flight between a crash and its replay; 10k is generous.
DEDUP_WINDOW_BLOCKS = 10_000
_DEDUP = f"non_replicated_deduplication_window = {DEDUP_WINDOW_BLOCKS}"
# A batch looks up only the identities the worker's filter may hold (its duplicates, a few
# thousand): with granules of 256 rows instead of 8192 such a lookup reads a few percent of the
# index instead of all of it (measured at 2M keys, 3k lookups: ~40 ms instead of ~110 ms).
DEDUP_INDEX_GRANULARITY = 256


@dataclass(frozen=True)
class Table:
    """A table's name and its CREATE statement body (columns, engine, ordering)."""

    name: str
    body: str

    def create_sql(self, database: str) -> str:
        """The idempotent CREATE TABLE statement."""
        return f"CREATE TABLE IF NOT EXISTS {database}.{self.name} {self.body}"


@dataclass(frozen=True)
class InsertSpec:
    """Insert into ``table`` from a wire table with ``wire_columns``, via ``select`` expressions."""

    table: str
    columns: tuple[str, ...]
    wire_columns: tuple[tuple[str, str], ...]  # (name, ClickHouse type of the wire column)
    select: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.select):
            raise ValueError(f"{self.table}: {len(self.columns)} columns, {len(self.select)} exprs")

    @property
    def wire_names(self) -> tuple[str, ...]:
        """Names of the wire columns, in order."""
        return tuple(name for name, _ in self.wire_columns)

    @property
    def wire_structure(self) -> str:
        """The wire table structure, as ``input()`` and external tables want it."""
        return ", ".join(f"{name} {ch_type}" for name, ch_type in self.wire_columns)

    def sql(self, database: str, source: str, target: str | None = None) -> str:
        """``INSERT INTO db.table (cols) SELECT exprs FROM source``; ``target`` replaces
        ``db.table (cols)`` (e.g. a ``FUNCTION null(...)`` dry run)."""
        into = target or f"{database}.{self.table} ({', '.join(self.columns)})"
        return f"INSERT INTO {into} SELECT {', '.join(self.select)} FROM {source}"


EVENTS = Table(
    "events",
    f"""(
    organization_id LowCardinality(String),
    external_subscription_id String,
    subscription_id String,
    plan_id LowCardinality(String),
    customer_id String,
    code LowCardinality(String),
    aggregation_type LowCardinality(String),
    transaction_id String,
    timestamp DateTime64(3, 'UTC'),
    value String,
    decimal_value Nullable(Decimal(38, 12)),
    charge_id LowCardinality(String),
    charge_filter_id LowCardinality(String),
    grouped_by Map(String, String),
    precise_total_amount_cents Nullable(Decimal(38, 12)),
    properties String,
    ingested_at DateTime64(3, 'UTC'),
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    batch_id String
) ENGINE = MergeTree
ORDER BY (organization_id, external_subscription_id, code, timestamp)
SETTINGS {_DEDUP}""",
)

USAGE_ROLLUPS = Table(
    "usage_rollups",
    f"""(
    organization_id LowCardinality(String),
    external_subscription_id String,
    subscription_id String,
    charge_id String,
    charge_filter_id String,
    grouped_by String,
    code LowCardinality(String),
    aggregation_type LowCardinality(String),
    bucket_start DateTime('UTC'),
    events_count UInt64,
    value_sum Decimal(76, 12),
    value_max Nullable(Decimal(38, 12)),
    latest_timestamp DateTime64(3, 'UTC'),
    latest_offset UInt64,
    latest_value Decimal(38, 12),
    precise_total_amount_cents Decimal(76, 12),
    value_time_sum Decimal(76, 15),
    batch_id String
) ENGINE = MergeTree
ORDER BY (organization_id, subscription_id, charge_id, charge_filter_id, grouped_by, bucket_start)
SETTINGS {_DEDUP}""",
)

UNIQUE_ROLLUPS = Table(
    "unique_rollups",
    f"""(
    organization_id LowCardinality(String),
    subscription_id String,
    charge_id String,
    charge_filter_id String,
    grouped_by String,
    value String,
    bucket_start DateTime('UTC'),
    events_count UInt64,
    latest_timestamp DateTime64(3, 'UTC'),
    latest_offset UInt64,
    latest_add UInt8,
    batch_id String
) ENGINE = MergeTree
ORDER BY (organization_id, subscription_id, charge_id, charge_filter_id, grouped_by, bucket_start,
          value)
SETTINGS {_DEDUP}""",
)

EVENT_VALUES = Table(
    "event_values",
    f"""(
    organization_id LowCardinality(String),
    subscription_id String,
    charge_id String,
    charge_filter_id String,
    grouped_by String,
    timestamp DateTime64(3, 'UTC'),
    source_offset UInt64,
    value Decimal(38, 12),
    batch_id String
) ENGINE = MergeTree
ORDER BY (organization_id, subscription_id, charge_id, timestamp, source_offset)
SETTINGS {_DEDUP}""",
)

DEAD_LETTERS = Table(
    "dead_letters",
    f"""(
    organization_id String,
    external_subscription_id String,
    transaction_id String,
    error_code LowCardinality(String),
    error_message String,
    payload String,
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    failed_at DateTime64(3, 'UTC'),
    batch_id String
) ENGINE = MergeTree
ORDER BY (error_code, failed_at, source_partition, source_offset)
SETTINGS {_DEDUP}""",
)

DEDUP_KEYS = Table(
    "dedup_keys",
    f"""(
    identity FixedString(16),
    log_epoch LowCardinality(String),
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    seen_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY identity
SETTINGS {_DEDUP}, index_granularity = {DEDUP_INDEX_GRANULARITY}""",
)

# The commit manifest: one row per partition range and marker. 'begin' markers go to
# ``batch_begins`` and 'done' markers to ``batches``, so each table takes one INSERT per batch.
# A data directory from before the split holds 'begin' rows in ``batches``; they still count.
_MANIFEST_BODY = f"""(
    batch_id String,
    log_epoch LowCardinality(String),
    topic LowCardinality(String),
    partition UInt32,
    from_offset UInt64,
    to_offset UInt64,
    state Enum8('begin' = 1, 'done' = 2),
    consumed UInt64,
    stored UInt64,
    duplicates UInt64,
    dead_letters UInt64,
    enriched_rows UInt64,
    written_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY (log_epoch, topic, partition, to_offset, state)
SETTINGS {_DEDUP}"""

BATCHES = Table("batches", _MANIFEST_BODY)
BATCH_BEGINS = Table("batch_begins", _MANIFEST_BODY)

CATALOG_DOCS = Table(
    "catalog_docs",
    """(
    organization_id String,
    kind LowCardinality(String),
    key String,
    version UInt64,
    body String,
    deleted UInt8,
    updated_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY (organization_id, kind, key, version)""",
)

ORGANIZATIONS = Table(
    "organizations",
    """(
    id String,
    name String,
    created_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY id""",
)

# API keys are stored only as a SHA-256 digest (hex) of the key: the key itself is shown once.
API_KEYS = Table(
    "api_keys",
    """(
    id String,
    organization_id String,
    name String,
    role LowCardinality(String),
    key_hash String,
    created_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY (organization_id, id)""",
)

# Revoked API keys: append-only, one row per revocation (the first counts). A key is refused
# on every worker within a second of its revocation (each reloads its key ring on a timer).
API_KEY_REVOCATIONS = Table(
    "api_key_revocations",
    """(
    id String,
    revoked_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY id""",
)

# Batches begun but never finished whose log is gone (another log epoch): their rows were
# deleted at start and the batch is recorded here, so it is neither open nor committed.
BATCH_ROLLBACKS = Table(
    "batch_rollbacks",
    f"""(
    batch_id String,
    log_epoch LowCardinality(String),
    topic LowCardinality(String),
    partition UInt32,
    from_offset UInt64,
    to_offset UInt64,
    consumed UInt64,
    reason String,
    rolled_back_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY (log_epoch, topic, partition, from_offset)
SETTINGS {_DEDUP}""",
)

# The schema versions applied to this database (sinks.migrations).
SCHEMA_MIGRATIONS = Table(
    "schema_migrations",
    """(
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY version""",
)

REDRIVES = Table(
    "redrives",
    """(
    source_topic LowCardinality(String),
    source_partition UInt32,
    source_offset UInt64,
    redriven_at DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY (source_topic, source_partition, source_offset)""",
)

ALL_TABLES = (
    EVENTS, USAGE_ROLLUPS, UNIQUE_ROLLUPS, EVENT_VALUES, DEAD_LETTERS, DEDUP_KEYS, BATCHES,
    BATCH_BEGINS, CATALOG_DOCS, ORGANIZATIONS, API_KEYS, API_KEY_REVOCATIONS, REDRIVES,
    BATCH_ROLLBACKS,
    SCHEMA_MIGRATIONS,
)

# Tables holding rows of a batch, with the column naming it: a batch is rolled back by deleting
# them (dedup_keys, which has no batch id, by its log positions).
BATCH_DATA_TABLES = ("events", "usage_rollups", "unique_rollups", "event_values", "dead_letters")

EVENTS_INSERT = InsertSpec(
    table="events",
    columns=(
        "organization_id", "external_subscription_id", "subscription_id", "plan_id",
        "customer_id", "code", "aggregation_type", "transaction_id", "timestamp", "value",
        "decimal_value", "charge_id", "charge_filter_id", "grouped_by",
        "precise_total_amount_cents", "properties", "ingested_at", "source_topic",
        "source_partition", "source_offset", "batch_id",
    ),
    wire_columns=(
        ("organization_id", "String"), ("external_subscription_id", "String"),
        ("subscription_id", "String"), ("plan_id", "String"), ("customer_id", "String"),
        ("code", "String"), ("aggregation_type", "String"), ("transaction_id", "String"),
        ("timestamp_ms", "Int64"), ("value", "String"), ("decimal_value", "Nullable(String)"),
        ("charge_id", "String"),
        ("charge_filter_id", "String"), ("grouped_by_json", "String"),
        ("precise_total_amount_cents", "Nullable(String)"), ("properties", "String"),
        ("ingested_at_ms", "Int64"), ("source_topic", "String"), ("source_partition", "UInt32"),
        ("source_offset", "UInt64"), ("batch_id", "String"),
    ),
    select=(
        "organization_id", "external_subscription_id", "subscription_id", "plan_id",
        "customer_id", "code", "aggregation_type", "transaction_id",
        "fromUnixTimestamp64Milli(timestamp_ms, 'UTC')", "value",
        "if(isNull(decimal_value), NULL, toDecimal128(assumeNotNull(decimal_value), 12))",
        "charge_id", "charge_filter_id",
        "CAST(JSONExtractKeysAndValues(assumeNotNull(grouped_by_json), 'String'), "
        "'Map(String, String)')",
        "if(isNull(precise_total_amount_cents), NULL, "
        "toDecimal128(assumeNotNull(precise_total_amount_cents), 12))", "properties",
        "fromUnixTimestamp64Milli(ingested_at_ms, 'UTC')", "source_topic", "source_partition",
        "source_offset", "batch_id",
    ),
)

ROLLUPS_INSERT = InsertSpec(
    table="usage_rollups",
    columns=(
        "organization_id", "external_subscription_id", "subscription_id", "charge_id",
        "charge_filter_id", "grouped_by", "code", "aggregation_type", "bucket_start",
        "events_count", "value_sum", "value_max", "latest_timestamp", "latest_offset",
        "latest_value", "precise_total_amount_cents", "value_time_sum", "batch_id",
    ),
    wire_columns=(
        ("organization_id", "String"), ("external_subscription_id", "String"),
        ("subscription_id", "String"), ("charge_id", "String"), ("charge_filter_id", "String"),
        ("grouped_by", "String"), ("code", "String"), ("aggregation_type", "String"),
        ("bucket_start_ms", "Int64"), ("events_count", "UInt64"), ("value_sum", "String"),
        ("value_max", "Nullable(String)"), ("latest_timestamp_ms", "Int64"),
        ("latest_offset", "UInt64"), ("latest_value", "String"),
        ("precise_total_amount_cents", "String"), ("value_time_sum", "String"),
        ("batch_id", "String"),
    ),
    select=(
        "organization_id", "external_subscription_id", "subscription_id", "charge_id",
        "charge_filter_id", "grouped_by", "code", "aggregation_type",
        "toDateTime(intDiv(bucket_start_ms, 1000), 'UTC')", "events_count",
        # Sums are Decimal(76, 12): no sum of accepted values (each below 10**26, see
        # schemas.bounds) can overflow. assumeNotNull: an out-of-range value fails the INSERT
        # instead of becoming NULL -> 0.
        "toDecimal256(assumeNotNull(value_sum), 12)",
        "if(isNull(value_max), NULL, toDecimal128(assumeNotNull(value_max), 12))",
        "fromUnixTimestamp64Milli(latest_timestamp_ms, 'UTC')", "latest_offset",
        "toDecimal128(assumeNotNull(latest_value), 12)",
        "toDecimal256(assumeNotNull(precise_total_amount_cents), 12)",
        "toDecimal256(assumeNotNull(value_time_sum), 15)", "batch_id",
    ),
)

DEAD_LETTERS_INSERT = InsertSpec(
    table="dead_letters",
    columns=(
        "organization_id", "external_subscription_id", "transaction_id", "error_code",
        "error_message", "payload", "source_topic", "source_partition", "source_offset",
        "failed_at", "batch_id",
    ),
    wire_columns=(
        ("organization_id", "String"), ("external_subscription_id", "String"),
        ("transaction_id", "String"), ("error_code", "String"), ("error_message", "String"),
        ("payload", "String"), ("source_topic", "String"), ("source_partition", "UInt32"),
        ("source_offset", "UInt64"), ("failed_at_ms", "Int64"), ("batch_id", "String"),
    ),
    select=(
        "organization_id", "external_subscription_id", "transaction_id", "error_code",
        "error_message", "payload", "source_topic", "source_partition", "source_offset",
        "fromUnixTimestamp64Milli(failed_at_ms, 'UTC')", "batch_id",
    ),
)

DEDUP_KEYS_INSERT = InsertSpec(
    table="dedup_keys",
    columns=(
        "identity", "log_epoch", "source_topic", "source_partition", "source_offset", "seen_at",
    ),
    wire_columns=(
        ("identity", "FixedString(16)"), ("log_epoch", "String"), ("source_topic", "String"),
        ("source_partition", "UInt32"), ("source_offset", "UInt64"), ("seen_at_ms", "Int64"),
    ),
    select=(
        "identity", "log_epoch", "source_topic", "source_partition", "source_offset",
        "fromUnixTimestamp64Milli(seen_at_ms, 'UTC')",
    ),
)

BATCHES_INSERT = InsertSpec(
    table="batches",
    columns=(
        "batch_id", "log_epoch", "topic", "partition", "from_offset", "to_offset", "state",
        "consumed", "stored", "duplicates", "dead_letters", "enriched_rows", "written_at",
    ),
    wire_columns=(
        ("batch_id", "String"), ("log_epoch", "String"), ("topic", "String"),
        ("partition", "UInt32"), ("from_offset", "UInt64"), ("to_offset", "UInt64"),
        ("state", "String"), ("consumed", "UInt64"), ("stored", "UInt64"),
        ("duplicates", "UInt64"), ("dead_letters", "UInt64"), ("enriched_rows", "UInt64"),
        ("written_at_ms", "Int64"),
    ),
    select=(
        "batch_id", "log_epoch", "topic", "partition", "from_offset", "to_offset", "state",
        "consumed", "stored", "duplicates", "dead_letters", "enriched_rows",
        "fromUnixTimestamp64Milli(written_at_ms, 'UTC')",
    ),
)

BATCH_BEGINS_INSERT = dataclasses.replace(BATCHES_INSERT, table="batch_begins")


def manifest_insert(state: str) -> InsertSpec:
    """Where a manifest marker goes: 'begin' to ``batch_begins``, 'done' to ``batches``."""
    return BATCH_BEGINS_INSERT if state == "begin" else BATCHES_INSERT


REDRIVES_INSERT = InsertSpec(
    table="redrives",
    columns=("source_topic", "source_partition", "source_offset", "redriven_at"),
    wire_columns=(
        ("source_topic", "String"), ("source_partition", "UInt32"), ("source_offset", "UInt64"),
    ),
    select=("source_topic", "source_partition", "source_offset", "now64(3, 'UTC')"),
)

UNIQUE_ROLLUPS_INSERT = InsertSpec(
    table="unique_rollups",
    columns=(
        "organization_id", "subscription_id", "charge_id", "charge_filter_id", "grouped_by",
        "value", "bucket_start", "events_count", "latest_timestamp", "latest_offset",
        "latest_add", "batch_id",
    ),
    wire_columns=(
        ("organization_id", "String"), ("subscription_id", "String"), ("charge_id", "String"),
        ("charge_filter_id", "String"), ("grouped_by", "String"), ("value", "String"),
        ("bucket_start_ms", "Int64"), ("events_count", "UInt64"),
        ("latest_timestamp_ms", "Int64"), ("latest_offset", "UInt64"), ("latest_add", "UInt8"),
        ("batch_id", "String"),
    ),
    select=(
        "organization_id", "subscription_id", "charge_id", "charge_filter_id", "grouped_by",
        "value", "toDateTime(intDiv(bucket_start_ms, 1000), 'UTC')", "events_count",
        "fromUnixTimestamp64Milli(latest_timestamp_ms, 'UTC')", "latest_offset", "latest_add",
        "batch_id",
    ),
)

EVENT_VALUES_INSERT = InsertSpec(
    table="event_values",
    columns=(
        "organization_id", "subscription_id", "charge_id", "charge_filter_id", "grouped_by",
        "timestamp", "source_offset", "value", "batch_id",
    ),
    wire_columns=(
        ("organization_id", "String"), ("subscription_id", "String"), ("charge_id", "String"),
        ("charge_filter_id", "String"), ("grouped_by", "String"), ("timestamp_ms", "Int64"),
        ("source_offset", "UInt64"), ("value", "String"), ("batch_id", "String"),
    ),
    select=(
        "organization_id", "subscription_id", "charge_id", "charge_filter_id", "grouped_by",
        "fromUnixTimestamp64Milli(timestamp_ms, 'UTC')", "source_offset",
        "toDecimal128(assumeNotNull(value), 12)", "batch_id",
    ),
)
