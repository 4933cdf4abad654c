"""API keys: made at random, stored only as a SHA-256 digest, checked in constant time.

A key is shown once, when it is made. What the store keeps is ``sha256(key)`` in hex; a
request's key is hashed and compared with every stored digest by ``hmac.compare_digest``, so
the time an answer takes says nothing about how close a guess was.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sinks.store import ApiKeyRecord

__all__ = ["KeyRing", "hash_key", "new_key", "new_key_record"]

_BEARER = "Bearer "
_TOKEN = re.compile(r"[\x21-\x7e]{1,512}")  # visible ASCII, no spaces


def new_key() -> str:
    """A new random key: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of ``key``: its SHA-256 digest in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key_record(key: str, organization_id: str, name: str, role: str = "admin") -> ApiKeyRecord:
    """The record to store for ``key`` (a new id, the key's digest)."""
    return ApiKeyRecord(f"key_{uuid.uuid4().hex[:16]}", organization_id, name, role, hash_key(key))


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    organization_id: str


class KeyRing:
    """The stored keys of every organization, for authenticating requests."""

    def __init__(self, records: Iterable[ApiKeyRecord] = ()):
        self._entries = tuple(
            _Entry(bytes.fromhex(r.key_hash), r.organization_id) for r in records
        )

    def organization(self, authorization: str | None) -> str | None:
        """The organization of an ``Authorization: Bearer <key>`` header, or None.

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
                found = entry.organization_id
        return found
