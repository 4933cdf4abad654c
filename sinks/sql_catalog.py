"""The store's SQL for the catalog, organizations and API keys (digests only)."""

from __future__ import annotations

import pyarrow as pa

from sinks import ddl
from sinks.sql_base import SqlBase
from sinks.store import ApiKeyRecord, CatalogDoc, Organization
from sinks.wire import table_for


class CatalogSql(SqlBase):
    """Catalog versions, organizations, API keys."""

    def put_catalog_docs(self, docs: list[CatalogDoc]) -> None:
        """Append versions; a doc without a version is numbered after the highest stored one."""
        if not docs:
            return
        next_version = int(
            self.scalar(f"SELECT max(version) FROM {self.database}.catalog_docs") or 0
        ) + 1
        versions = []
        for doc in docs:
            versions.append(doc.version or next_version)
            next_version = max(next_version, versions[-1]) + 1
        table = table_for(_CATALOG_INSERT, {
            "organization_id": [d.organization_id for d in docs],
            "kind": [d.kind for d in docs],
            "key": [d.key for d in docs],
            "version": versions,
            "body": [d.body for d in docs],
            "deleted": [int(d.deleted) for d in docs],
            "effective_at_ms": [d.effective_at_ms for d in docs],
        })
        self._insert_wire(_CATALOG_INSERT, table, None)

    def load_catalog_docs(self) -> list[CatalogDoc]:
        """The latest version of each (organization, kind, key)."""
        latest: dict[tuple[str, str, str], CatalogDoc] = {}
        for doc in self.load_catalog_history():
            latest[(doc.organization_id, doc.kind, doc.key)] = doc
        return [latest[k] for k in sorted(latest)]

    def load_catalog_history(self) -> list[CatalogDoc]:
        """Every version, oldest first."""
        rows = self._query(
            f"SELECT organization_id, kind, key, version, body, deleted, "
            f"toUnixTimestamp64Milli(updated_at) at_ms FROM {self.database}.catalog_docs "
            f"ORDER BY version"
        ).to_pylist()
        return [
            CatalogDoc(r["organization_id"], r["kind"], r["key"], r["body"], bool(r["deleted"]),
                       r["version"], r["at_ms"])
            for r in rows
        ]

    def ensure_organization(self, org_id: str, name: str) -> Organization:
        """Create ``org_id`` unless it exists; return the stored one."""
        for org in self.organizations():
            if org.id == org_id:
                return org
        wire = pa.table({"id": [org_id], "name": [name]})
        self._insert_wire(_ORG_INSERT, wire, None)
        return Organization(org_id, name)

    def organizations(self) -> list[Organization]:
        """Every organization, first created first (one row per id)."""
        rows = self._query(
            f"SELECT id, argMin(name, created_at) n "
            f"FROM {self.database}.organizations GROUP BY id ORDER BY id"
        ).to_pylist()
        return [Organization(r["id"], r["n"]) for r in rows]

    def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store an API key (its digest only)."""
        table = table_for(_API_KEY_INSERT, {
            "id": [record.id], "organization_id": [record.organization_id],
            "name": [record.name], "role": [record.role], "key_hash": [record.key_hash],
        })
        self._insert_wire(_API_KEY_INSERT, table, None)

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every API key (digests), oldest first, with when it was revoked (if it was)."""
        db = self.database
        rows = self._query(
            f"SELECT k.id id, organization_id, name, role, key_hash, "
            f"toUnixTimestamp64Milli(created_at) created_ms, r.revoked_ms revoked_ms "
            f"FROM (SELECT * FROM {db}.api_keys ORDER BY created_at, id LIMIT 1 BY id) k "
            f"LEFT JOIN (SELECT id, toUnixTimestamp64Milli(min(revoked_at)) revoked_ms "
            f"FROM {db}.api_key_revocations GROUP BY id) r ON r.id = k.id "
            f"ORDER BY created_ms, id SETTINGS join_use_nulls = 1"
        ).to_pylist()
        return [
            ApiKeyRecord(r["id"], r["organization_id"], r["name"], r["role"], r["key_hash"],
                         revoked_at_ms=r["revoked_ms"], created_at_ms=r["created_ms"])
            for r in rows
        ]

    def revoke_api_key(self, key_id: str) -> None:
        """Record the key's revocation (now)."""
        self._insert_wire(_REVOCATION_INSERT, pa.table({"id": [key_id]}), None)


_CATALOG_INSERT = ddl.InsertSpec(
    table="catalog_docs",
    columns=("organization_id", "kind", "key", "version", "body", "deleted", "updated_at"),
    wire_columns=(
        ("organization_id", "String"), ("kind", "String"), ("key", "String"),
        ("version", "UInt64"), ("body", "String"), ("deleted", "UInt8"),
        ("effective_at_ms", "Int64"),
    ),
    select=(
        "organization_id", "kind", "key", "version", "body", "deleted",
        "if(effective_at_ms = 0, now64(3, 'UTC'), "
        "fromUnixTimestamp64Milli(effective_at_ms, 'UTC'))",
    ),
)

_ORG_INSERT = ddl.InsertSpec(
    table="organizations",
    columns=("id", "name", "created_at"),
    wire_columns=(("id", "String"), ("name", "String")),
    select=("id", "name", "now64(3, 'UTC')"),
)

_REVOCATION_INSERT = ddl.InsertSpec(
    table="api_key_revocations",
    columns=("id", "revoked_at"),
    wire_columns=(("id", "String"),),
    select=("id", "now64(3, 'UTC')"),
)

_API_KEY_INSERT = ddl.InsertSpec(
    table="api_keys",
    columns=("id", "organization_id", "name", "role", "key_hash", "created_at"),
    wire_columns=(
        ("id", "String"), ("organization_id", "String"), ("name", "String"), ("role", "String"),
        ("key_hash", "String"),
    ),
    select=("id", "organization_id", "name", "role", "key_hash", "now64(3, 'UTC')"),
)
