"""The store interface: everything Meterline keeps in ClickHouse, whatever the backend.

Implementations: :mod:`sinks.chdb_store` (in-process engine on a data directory, the default)
and :mod:`sinks.clickhouse_store` (a ClickHouse server through clickhouse-connect). Both share
their SQL through :class:`sinks.sql_store.SqlStore`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import pyarrow as pa

from aggregation.usage_aggregate import UsageAggregate
from sinks.ddl import InsertSpec

__all__ = ["Store", "StoreError", "UsageAggregate"]


class StoreError(RuntimeError):
    """The store failed; the caller retries the whole batch (writes are idempotent)."""


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
    """A batch whose writes began but whose 'done' marker was never written."""

    batch_id: str
    partition: int
    from_offset: int
    to_offset: int


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
    """A tenant and its API key."""

    id: str
    name: str
    api_key: str


class Store(Protocol):
    """What the pipeline, the API and the billing core need from ClickHouse."""

    def ensure_schema(self) -> None:
        """Create the database and tables if missing (idempotent)."""

    def insert(self, spec: InsertSpec, wire: pa.Table, token: str) -> None:
        """Insert a wire table; a second insert with the same ``token`` is ignored."""

    def find_seen(
        self, identities: list[bytes], since_ms: int
    ) -> dict[bytes, list[LogPosition]]:
        """Stored positions of each identity first seen at or after ``since_ms``."""

    def stored_identities(self, since_ms: int) -> Iterator[bytes]:
        """Every dedup identity seen since ``since_ms``, in chunks of packed 16-byte digests."""

    def open_batches(self, log_epoch: str, topic: str) -> list[OpenBatch]:
        """Batches begun but not marked done, oldest first."""

    def committed_offsets(self, log_epoch: str, topic: str) -> dict[int, int]:
        """Next offset to read per partition, after the last committed batch."""

    def partition_counts(self, log_epoch: str | None = None) -> list[PartitionCounts]:
        """Reconciliation counters per (topic, partition) of committed batches."""

    def dedup_index_stats(self) -> dict:
        """``keys``, ``bytes_on_disk`` and ``bytes_per_key`` of the dedup index."""

    def reconcile(self) -> list[dict]:
        """Per (log epoch, topic, partition): manifest counts and counts recounted from rows."""

    def read_usage(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> list[UsageAggregate]:
        """Aggregates per (charge, filter, group) for buckets in ``[from_ms, to_ms)``."""

    def read_daily_sums(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int,
        timezone: str,
    ) -> dict[tuple, list[tuple[str, Decimal]]]:
        """Per (charge, filter, group): (local ISO date, Σ value) per day, for proration."""

    def read_unique(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> dict[tuple, tuple[int, int]]:
        """Per (charge, filter, group): (values present at the window's end, events)."""

    def read_event_values(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> dict[tuple, tuple[Decimal, ...]]:
        """Per (charge, filter, group): percentage-charge values in event order."""

    def put_catalog_docs(self, docs: list[CatalogDoc]) -> None:
        """Store new versions of catalog resources."""

    def load_catalog_docs(self) -> list[CatalogDoc]:
        """The latest version of every catalog resource (deleted ones included)."""

    def load_catalog_history(self) -> list[CatalogDoc]:
        """Every version of every catalog resource, oldest version first."""

    def ensure_organization(self, org_id: str, name: str, api_key: str) -> Organization:
        """Create the organization with ``api_key`` if it does not exist; return it."""

    def organizations(self) -> list[Organization]:
        """Every organization."""

    def dead_letters(
        self, *, error_code: str | None = None, organization_id: str | None = None,
        since_ms: int | None = None, until_ms: int | None = None, limit: int = 1000,
        include_unattributed: bool = False, pending_only: bool = False,
    ) -> list[dict]:
        """Dead letters matching the filters, newest first (payload as the original bytes)."""

    def mark_redriven(self, letters: list[dict]) -> None:
        """Record that these dead letters (rows of :meth:`dead_letters`) were re-published."""

    def find_events(self, organization_id: str, transaction_id: str) -> list[dict]:
        """Stored enriched rows of one transaction id (one per matched charge)."""

    def scalar(self, sql: str, params: dict | None = None) -> str:
        """Run a query returning one value (as text); for tests and operators."""

    def close(self) -> None:
        """Release the backend."""
