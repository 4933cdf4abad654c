"""A store in memory, for unit tests and examples: what the pipeline, the catalog and the
event lookup need.

It keeps the rows of each encoded part, ignores a repeated token as ClickHouse does, answers
the dedup index, the manifest and the catalog from them, and can be made to fail:
``failures`` transient errors on the next writes, ``refuse`` (a predicate on a part's rows)
for refusals of the data. Reads of usage are not implemented: the real engine (chdb) answers
those in the integration tests.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sinks.batch_tables import EncodedBatch, table_of
from sinks.store import (
    VALUE_RANGE_ERROR_CODES,
    ApiKeyRecord,
    CatalogDoc,
    LogPosition,
    OpenBatch,
    Organization,
    StoreDataError,
    StoreError,
)

RowPredicate = Callable[[str, Mapping[str, Any]], bool]  # (part, row) → refused?


@dataclass
class _Marker:
    batch_id: str
    log_epoch: str
    topic: str
    partition: int
    from_offset: int
    to_offset: int
    consumed: int
    written_at_ms: int


@dataclass
class MemoryStore:
    """The store's pipeline and catalog methods over Python lists."""

    failures: int = 0  # the next N writes fail with StoreError (then it recovers)
    refuse: RowPredicate | None = None  # rows the engine would refuse (StoreDataError)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # part → rows
    writes: list[tuple[str, str]] = field(default_factory=list)  # (table, token), landed
    lookups: list[list[bytes]] = field(default_factory=list)  # identities looked up
    deleted: list[str] = field(default_factory=list)  # batch ids whose rows were deleted
    docs: list[CatalogDoc] = field(default_factory=list)
    _tokens: set[str] = field(default_factory=set)
    _begun: list[_Marker] = field(default_factory=list)
    _done: list[_Marker] = field(default_factory=list)
    _rolled_back: list[dict[str, Any]] = field(default_factory=list)
    _revoked: dict[str, int] = field(default_factory=dict)  # key id → revoked at, ms
    _orgs: dict[str, Organization] = field(default_factory=dict)
    _keys: list[ApiKeyRecord] = field(default_factory=list)

    # --- writes ----------------------------------------------------------------------------
    def write_part(self, batch: EncodedBatch, part: str, token: str) -> None:
        """Keep the part's rows, unless ``token`` was seen (or the rows are refused)."""
        self._maybe_fail()
        self.check_part(batch, part)
        if not batch.rows(part) or token in self._tokens:
            return
        self._tokens.add(token)
        self.rows.setdefault(part, []).extend(batch.tables[part].to_pylist())
        self.writes.append((table_of(part), token))

    def check_part(self, batch: EncodedBatch, part: str) -> None:
        """Raise StoreDataError when ``refuse`` refuses one of the part's rows."""
        if self.refuse is None or not batch.rows(part):
            return
        for row in batch.tables[part].to_pylist():
            if self.refuse(part, row):
                code = next(iter(VALUE_RANGE_ERROR_CODES))
                raise StoreDataError(f"Code: {code}. refused: {part} row {row}", code)

    def write_marker(
        self, batch_id: str, log_epoch: str, topic: str, state: str,
        tallies: Mapping[int, Any], written_at_ms: int,
    ) -> None:
        """A 'begin' or 'done' marker per partition range (a repeated one is ignored)."""
        self._maybe_fail()
        token = f"{batch_id}:{state}"
        if token in self._tokens:
            return
        self._tokens.add(token)
        markers = self._begun if state == "begin" else self._done
        for partition, t in sorted(tallies.items()):
            markers.append(_Marker(batch_id, log_epoch, topic, partition, t.from_offset,
                                   t.to_offset, t.consumed, written_at_ms))
        self.writes.append(("batch_begins" if state == "begin" else "batches", token))

    def delete_batch_rows(
        self, batch_id: str, log_epoch: str, topic: str, ranges: dict[int, tuple[int, int]]
    ) -> None:
        """Drop the batch's data rows, and its dedup keys by log position."""
        self.deleted.append(batch_id)
        for part, rows in self.rows.items():
            if part == "keys":
                rows[:] = [r for r in rows if not (
                    r["log_epoch"] == log_epoch and r["source_topic"] == topic
                    and r["source_partition"] in ranges
                    and ranges[r["source_partition"]][0] <= r["source_offset"]
                    <= ranges[r["source_partition"]][1])]
            else:
                rows[:] = [r for r in rows if r.get("batch_id") != batch_id]

    def roll_back_batch(self, topic: str, parts: list[OpenBatch], reason: str) -> None:
        """Delete what an unfinished batch wrote and record it as rolled back."""
        first = parts[0]
        self.delete_batch_rows(first.batch_id, first.log_epoch, topic,
                               {p.partition: (p.from_offset, p.to_offset) for p in parts})
        if first.batch_id not in {r["batch_id"] for r in self._rolled_back}:
            self._rolled_back.extend({"batch_id": p.batch_id, "log_epoch": p.log_epoch,
                                      "partition": p.partition, "consumed": p.consumed,
                                      "reason": reason} for p in parts)

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("injected: the store is away")

    # --- the dedup index and the manifest --------------------------------------------------
    def seed_dedup_keys(self, keys: Mapping[bytes, tuple[LogPosition, int]]) -> None:
        """Dedup keys stored earlier: identity → (log position, seen-at ms)."""
        self.rows.setdefault("keys", []).extend(
            {"identity": k, "log_epoch": p.log_epoch, "source_topic": p.topic,
             "source_partition": p.partition, "source_offset": p.offset, "seen_at_ms": at}
            for k, (p, at) in keys.items())

    def find_seen(self, identities: list[bytes], since_ms: int) -> dict[bytes, list[LogPosition]]:
        """Stored positions of each identity seen at or after ``since_ms``."""
        self.lookups.append(list(identities))
        wanted = set(identities)
        found: dict[bytes, list[LogPosition]] = {}
        for r in self.rows.get("keys", []):
            if r["identity"] in wanted and r["seen_at_ms"] >= since_ms:
                found.setdefault(r["identity"], []).append(LogPosition(
                    r["log_epoch"], r["source_topic"], r["source_partition"],
                    r["source_offset"]))
        return found

    def stored_identities(self, since_ms: int) -> Iterator[bytes]:
        """Every identity seen since ``since_ms``, packed (one chunk)."""
        yield b"".join(r["identity"] for r in self.rows.get("keys", [])
                       if r["seen_at_ms"] >= since_ms)

    def open_batches(self, topic: str) -> list[OpenBatch]:
        """Begun batches of ``topic`` neither done nor rolled back."""
        closed = {m.batch_id for m in self._done} | {r["batch_id"] for r in self._rolled_back}
        return [OpenBatch(m.batch_id, m.partition, m.from_offset, m.to_offset, m.log_epoch,
                          m.consumed, m.written_at_ms)
                for m in sorted(self._begun, key=lambda m: m.from_offset)
                if m.topic == topic and m.batch_id not in closed]

    def committed_offsets(self, log_epoch: str, topic: str) -> dict[int, int]:
        """Per partition, one past the highest offset of a done batch."""
        out: dict[int, int] = {}
        for m in self._done:
            if m.log_epoch == log_epoch and m.topic == topic:
                out[m.partition] = max(out.get(m.partition, 0), m.to_offset + 1)
        return out

    def rolled_back_batches(self) -> list[dict[str, Any]]:
        """Every rolled-back batch range."""
        return list(self._rolled_back)

    def find_events(self, organization_id: str, transaction_id: str) -> list[dict[str, Any]]:
        """Stored event rows of one transaction id, newest first (as the SQL store's)."""
        rows = [r for r in self.rows.get("events", [])
                if r["organization_id"] == organization_id
                and r["transaction_id"] == transaction_id]
        return sorted(rows, key=lambda r: -r.get("ingested_at_ms", 0))[:100]

    # --- the catalog, organizations and keys ------------------------------------------------
    def put_catalog_docs(self, docs: list[CatalogDoc]) -> None:
        """Append versions (numbered by the caller)."""
        self.docs.extend(docs)

    def load_catalog_history(self) -> list[CatalogDoc]:
        """Every version, oldest first."""
        return sorted(self.docs, key=lambda d: d.version)

    def load_catalog_docs(self) -> list[CatalogDoc]:
        """The latest version of each resource."""
        latest = {(d.organization_id, d.kind, d.key): d for d in self.load_catalog_history()}
        return [latest[k] for k in sorted(latest)]

    def ensure_organization(self, org_id: str, name: str) -> Organization:
        """Create ``org_id`` unless it exists; return the stored one."""
        return self._orgs.setdefault(org_id, Organization(org_id, name))

    def organizations(self) -> list[Organization]:
        """Every organization."""
        return [self._orgs[k] for k in sorted(self._orgs)]

    def add_api_key(self, record: ApiKeyRecord) -> None:
        """Keep an API key record (its digest), stamped now."""
        self._keys.append(dataclasses.replace(record, created_at_ms=int(time.time() * 1000)))

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every API key record, with when it was revoked (if it was)."""
        return [dataclasses.replace(k, revoked_at_ms=self._revoked.get(k.id)) for k in self._keys]

    def revoke_api_key(self, key_id: str) -> None:
        """Record the key's revocation (the first one counts)."""
        self._revoked.setdefault(key_id, int(time.time() * 1000))
