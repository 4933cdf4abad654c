"""The store interface: everything Meterline keeps in ClickHouse, whatever the backend.

Implementations: :mod:`sinks.chdb_store` (in-process engine on a data directory, the default)
and :mod:`sinks.clickhouse_store` (a ClickHouse server through clickhouse-connect). Both share
their SQL through :class:`sinks.sql_store.SqlStore`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from aggregation.usage_aggregate import UsageAggregate
from sinks.ddl import InsertSpec

if TYPE_CHECKING:  # sinks.batch_tables imports this module (through sinks.wire)
    from sinks.batch_tables import EncodedBatch

__all__ = [
    "AccessStore", "BatchStore", "CatalogStore", "DeadLetterStore", "OperationsStore", "Store",
    "StoreDataError", "StoreError", "UsageAggregate", "UsageStore", "store_error",
]


class StoreError(RuntimeError):
    """The store failed; the caller retries the whole batch (writes are idempotent)."""


class StoreDataError(StoreError):
    """The engine rejected the data itself (a value it cannot hold or parse): retrying the
    same rows fails again. ``code`` is ClickHouse's error code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


# ClickHouse error codes that blame the data of a query, not the server or the connection.
VALUE_RANGE_ERROR_CODES = frozenset({
    69,  # ARGUMENT_OUT_OF_BOUND ("Decimal value is too big")
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    407,  # DECIMAL_OVERFLOW
})
DATA_ERROR_CODES = VALUE_RANGE_ERROR_CODES | frozenset({
    6,  # CANNOT_PARSE_TEXT
    25,  # CANNOT_PARSE_ESCAPE_SEQUENCE
    26,  # CANNOT_PARSE_QUOTED_STRING
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  # ATTEMPT_TO_READ_AFTER_EOF (an empty number)
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
})
_ERROR_CODE = re.compile(r"Code: (\d+)\.")


def store_error(message: str) -> StoreError:
    """The error to raise for a failed query whose engine message is ``message``:
    :class:`StoreDataError` when ClickHouse blames the data, else :class:`StoreError`."""
    match = _ERROR_CODE.search(message)
    if match and int(match.group(1)) in DATA_ERROR_CODES:
        return StoreDataError(message, int(match.group(1)))
    return StoreError(message)


# (charge_id, charge_filter_id, grouped_by): the key of one fee's usage
FeeKey = tuple[str, str, tuple[tuple[str, str], ...]]

IDENTITY_BYTES = 16  # a dedup identity is a 16-byte digest (streams.batch.identity_of)


def pack_identities(identities: Sequence[bytes]) -> bytes:
    """Dedup identities end to end in one buffer; raises ``ValueError`` unless each is 16 bytes."""
    if any(len(i) != IDENTITY_BYTES for i in identities):
        raise ValueError(f"dedup identities are {IDENTITY_BYTES} bytes each")
    return b"".join(identities)


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where a message sits in Kafka; ``log_epoch`` tells apart two lives of the same topic."""

    log_epoch: str
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class OpenBatch:
    """One partition range of a batch whose writes began but whose 'done' marker was never
    written (nor was it rolled back)."""

    batch_id: str
    partition: int
    from_offset: int
    to_offset: int
    log_epoch: str = ""
    consumed: int = 0
    begun_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class PartitionCounts:
    """Reconciliation counters of one partition, summed over committed batches."""

    topic: str
    partition: int
    consumed: int
    stored: int
    duplicates: int
    dead_letters: int
    next_offset: int


@dataclass(frozen=True, slots=True)
class CatalogDoc:
    """One version of a catalog resource: its Lago body, or a deletion."""

    organization_id: str
    kind: str
    key: str
    body: str
    deleted: bool = False
    version: int = 0  # 0 = let the store number it
    effective_at_ms: int = 0  # when this version takes effect (0 = when stored)


@dataclass(frozen=True, slots=True)
class Organization:
    """A tenant."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: its SHA-256 digest (hex), never the key."""

    id: str
    organization_id: str
    name: str
    role: str
    key_hash: str
    revoked_at_ms: int | None = None  # None while the key is valid
    created_at_ms: int = field(default=0, compare=False)  # set by the store


class BatchStore(Protocol):
    """What the pipeline needs: the dedup index, a batch's parts and the manifest."""

    def find_seen(
        self, identities: list[bytes], since_ms: int
    ) -> dict[bytes, list[LogPosition]]:
        """Stored positions of each identity first seen at or after ``since_ms``."""

    def stored_identities(self, since_ms: int) -> Iterator[bytes]:
        """Every dedup identity seen since ``since_ms``, in chunks of packed 16-byte digests."""

    def write_part(self, batch: EncodedBatch, part: str, token: str) -> None:
        """Insert one part of an encoded batch; a repeated ``token`` is ignored."""

    def check_part(self, batch: EncodedBatch, part: str) -> None:
        """Dry-run one part's INSERT; raise StoreDataError if the engine refuses its data."""

    def write_marker(
        self, batch_id: str, log_epoch: str, topic: str, state: str,
        tallies: Mapping[int, Any], written_at_ms: int,
    ) -> None:
        """A 'begin' or 'done' manifest row per partition range of a batch (idempotent)."""

    def open_batches(self, topic: str) -> list[OpenBatch]:
        """Batches of any log epoch begun but neither done nor rolled back, oldest first."""

    def committed_offsets(self, log_epoch: str, topic: str) -> dict[int, int]:
        """Next offset to read per partition, after the last committed batch."""

    def delete_batch_rows(
        self, batch_id: str, log_epoch: str, topic: str, ranges: dict[int, tuple[int, int]]
    ) -> None:
        """Delete every row an unfinished batch wrote (data rows and dedup keys)."""

    def roll_back_batch(self, topic: str, parts: list[OpenBatch], reason: str) -> None:
        """Delete what an unfinished batch wrote and record it as rolled back."""


class UsageStore(Protocol):
    """What billing reads: pre-aggregated usage, and the enriched rows of a transaction."""

    def read_usage(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> list[UsageAggregate]:
        """Aggregates per (charge, filter, group) for buckets in ``[from_ms, to_ms)``."""

    def read_daily_sums(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int,
        timezone: str,
    ) -> dict[FeeKey, list[tuple[str, Decimal]]]:
        """Per (charge, filter, group): (local ISO date, Σ value) per day, for proration."""

    def read_unique(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> dict[FeeKey, tuple[int, int]]:
        """Per (charge, filter, group): (values present at the window's end, events)."""

    def read_event_values(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> dict[FeeKey, tuple[Decimal, ...]]:
        """Per (charge, filter, group): percentage-charge values in event order."""

    def find_events(self, organization_id: str, transaction_id: str) -> list[dict[str, Any]]:
        """Stored enriched rows of one transaction id (one per matched charge)."""


class CatalogStore(Protocol):
    """The versioned catalog."""

    def put_catalog_docs(self, docs: list[CatalogDoc]) -> None:
        """Store new versions of catalog resources."""

    def load_catalog_docs(self) -> list[CatalogDoc]:
        """The latest version of every catalog resource (deleted ones included)."""

    def load_catalog_history(self) -> list[CatalogDoc]:
        """Every version of every catalog resource, oldest version first."""


class AccessStore(Protocol):
    """Organizations and their API keys (digests only)."""

    def ensure_organization(self, org_id: str, name: str) -> Organization:
        """Create the organization if it does not exist; return it."""

    def organizations(self) -> list[Organization]:
        """Every organization."""

    def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store an API key (its digest only)."""

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every API key (digests), revoked ones included (``revoked_at_ms``)."""

    def revoke_api_key(self, key_id: str) -> None:
        """Mark a key revoked (an append-only record; its first revocation counts)."""


class DeadLetterStore(Protocol):
    """Dead letters and their re-drives."""

    def dead_letters(
        self, *, error_code: str | None = None, organization_id: str | None = None,
        since_ms: int | None = None, until_ms: int | None = None, limit: int = 1000,
        include_unattributed: bool = False, pending_only: bool = False, offset: int = 0,
        payload_limit: int | None = None, position: tuple[str, int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Dead letters matching the filters, newest first (payload as the original bytes,
        its first ``payload_limit`` bytes only if set; ``payload_bytes``: its whole size)."""

    def count_dead_letters(
        self, *, error_code: str | None = None, organization_id: str | None = None,
        since_ms: int | None = None, until_ms: int | None = None,
        include_unattributed: bool = False, pending_only: bool = False,
        position: tuple[str, int, int] | None = None,
    ) -> int:
        """How many dead letters match the filters."""

    def mark_redriven(self, letters: list[dict[str, Any]]) -> None:
        """Record that these dead letters (rows of :meth:`dead_letters`) were re-published."""


class OperationsStore(Protocol):
    """What operators and status pages read: counts, reconciliation, rollbacks."""

    def partition_counts(self, log_epoch: str | None = None) -> list[PartitionCounts]:
        """Reconciliation counters per (topic, partition) of committed batches."""

    def reconcile(self) -> list[dict[str, Any]]:
        """Per (log epoch, topic, partition): manifest counts and counts recounted from rows."""

    def rolled_back_batches(self) -> list[dict[str, Any]]:
        """Every rolled-back batch range."""

    def dedup_index_stats(self) -> dict[str, Any]:
        """``keys``, ``bytes_on_disk`` and ``bytes_per_key`` of the dedup index."""


class Store(
    BatchStore, UsageStore, CatalogStore, AccessStore, DeadLetterStore, OperationsStore,
    Protocol,
):
    """Everything Meterline keeps in ClickHouse, whatever the backend; each consumer asks for
    the part it uses (the pipeline a :class:`BatchStore`, billing a :class:`UsageStore`...)."""

    def ensure_schema(self) -> None:
        """Create the database and tables if missing (idempotent)."""

    def insert(self, spec: InsertSpec, wire: pa.Table, token: str) -> None:
        """Insert a wire table; a second insert with the same ``token`` is ignored."""

    def check_insert(self, spec: InsertSpec, wire: pa.Table) -> None:
        """Do every conversion of the INSERT without writing; raise StoreDataError if rejected."""

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> str:
        """Run a query returning one value (as text); for tests and operators."""

    def close(self) -> None:
        """Release the backend."""
