"""API keys: made at random, stored only as a SHA-256 digest, checked in constant time, each
with a role; created, listed and revoked by admins.

A key is shown once, when it is made. What the store keeps is ``sha256(key)`` in hex; a
request's key is hashed and compared with every valid stored digest by
``hmac.compare_digest``, so the time an answer takes says nothing about how close a guess was.

Roles (:class:`Role`): ``ingest`` posts events and nothing else, ``read`` reads (usage, events,
the catalog, dead letters, status), ``admin`` does everything, keys and re-drives included.
The *operator* is an admin of the default organization: it alone may manage the keys of
another organization.

Revocation is a record in the store; every worker reloads its :class:`KeyRing` on a timer
(:data:`RELOAD_SECONDS`), so a revoked key fails everywhere within a second, and a key made on
one worker works on the others as soon.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sinks.store import ApiKeyRecord

__all__ = [
    "RELOAD_SECONDS", "ApiKeyService", "KeyRing", "LiveKeyRing", "Principal", "Role",
    "hash_key", "new_key", "new_key_record",
]

_BEARER = "Bearer "
_TOKEN = re.compile(r"[\x21-\x7e]{1,512}")  # visible ASCII, no spaces
RELOAD_SECONDS = 0.5


class Role(StrEnum):
    """What a key may do."""

    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


def new_key() -> str:
    """A new random key: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of ``key``: its SHA-256 digest in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key_record(
    key: str, organization_id: str, name: str, role: str = Role.ADMIN
) -> ApiKeyRecord:
    """The record to store for ``key`` (a new id, the key's digest)."""
    return ApiKeyRecord(f"key_{uuid.uuid4().hex[:16]}", organization_id, name, str(role),
                        hash_key(key))


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the key's id, name, organization and role."""

    key_id: str
    organization_id: str
    name: str
    role: Role


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    principal: Principal


class KeyRing:
    """The valid (unrevoked) keys of every organization, for authenticating requests."""

    def __init__(self, records: Iterable[ApiKeyRecord] = ()):
        self._entries = tuple(
            _Entry(bytes.fromhex(r.key_hash),
                   Principal(r.id, r.organization_id, r.name, Role(r.role)))
            for r in records if r.revoked_at_ms is None and r.role in Role.__members__.values()
        )

    def principal(self, authorization: str | None) -> Principal | None:
        """Who an ``Authorization: Bearer <key>`` header is, or None for no valid key.

        The header must be exactly ``Bearer`` and one space before the key, as Lago reads it:
        padded or otherwise altered keys are refused."""
        if not authorization or not authorization.startswith(_BEARER):
            return None
        token = authorization[len(_BEARER):]
        if not _TOKEN.fullmatch(token):
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for entry in self._entries:  # every entry is compared: constant time in the key
            if hmac.compare_digest(entry.digest, digest):
                found = entry.principal
        return found

    def organization(self, authorization: str | None) -> str | None:
        """The organization of a header's key, or None (see :meth:`principal`)."""
        principal = self.principal(authorization)
        return principal.organization_id if principal else None


class KeyStore(Protocol):
    """What the keys need of the store."""

    def api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones included."""

    def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store a key's record."""

    def revoke_api_key(self, key_id: str) -> None:
        """Record a key's revocation."""


class LiveKeyRing:
    """The key ring as the store has it, reloaded by :meth:`reload` (a timer calls it every
    :data:`RELOAD_SECONDS`, and every change made here reloads it at once)."""

    def __init__(self, store: KeyStore):
        self.store = store
        self._lock = threading.Lock()
        self._ring = KeyRing(store.api_keys())

    def __call__(self) -> KeyRing:
        return self._ring

    def reload(self) -> None:
        """Read the keys again (blocking: call it off the event loop)."""
        with self._lock:
            self._ring = KeyRing(self.store.api_keys())


@dataclass(frozen=True)
class CreatedKey:
    """A key just made: its record and, this once, the key itself."""

    record: ApiKeyRecord
    key: str


class ApiKeyService:
    """Create, list and revoke the keys of an organization (the store keeps digests only)."""

    def __init__(self, store: KeyStore, ring: LiveKeyRing | None = None):
        self.store = store
        self.ring = ring

    def create(self, organization_id: str, role: Role, name: str) -> CreatedKey:
        """A new key of ``role`` for the organization; the key is in the answer only."""
        key = new_key()
        record = new_key_record(key, organization_id, name, role)
        self.store.add_api_key(record)
        self._reload()
        stored = self.find(organization_id, record.id)
        return CreatedKey(stored or record, key)

    def list(self, organization_id: str) -> list[ApiKeyRecord]:
        """The organization's keys, revoked ones included, oldest first."""
        return [k for k in self.store.api_keys() if k.organization_id == organization_id]

    def find(self, organization_id: str, key_id: str) -> ApiKeyRecord | None:
        """One key of the organization, or None (another organization's key is not found)."""
        return next((k for k in self.list(organization_id) if k.id == key_id), None)

    def revoke(self, organization_id: str, key_id: str) -> ApiKeyRecord | None:
        """Revoke one of the organization's keys (again: no change); None if not found."""
        found = self.find(organization_id, key_id)
        if found is None:
            return None
        if found.revoked_at_ms is None:
            self.store.revoke_api_key(key_id)
            self._reload()
        return self.find(organization_id, key_id)

    def _reload(self) -> None:
        if self.ring is not None:
            self.ring.reload()
