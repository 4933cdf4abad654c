"""API keys over HTTP (admins): ``GET/POST /api/v1/meterline/api_keys`` and
``DELETE /api/v1/meterline/api_keys/{id}``.

An admin manages the keys of its own organization. The operator (an admin of the default
organization) may name another one with ``organization_id`` (in the query, or in the created
key's body); anyone else naming another organization gets 403 ``forbidden``. A new key's value
is in the creation's answer only. A key cannot revoke itself (422 ``key_in_use``): rotation is
create the new key, move the callers to it, then revoke the old one with the new one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from api.envelope import ApiResponse, error, iso_ms, parse_json, validation
from api.pagination import Page, requested_page
from schemas.bounds import MAX_ID_LENGTH
from schemas.errors import INVALID_TYPE, INVALID_VALUE, VALUE_IS_MANDATORY, VALUE_IS_TOO_LONG
from services.api_keys import ApiKeyService, Principal, Role
from sinks.store import ApiKeyRecord

_ROLES = frozenset(role.value for role in Role)


def render(record: ApiKeyRecord) -> dict[str, Any]:
    """A key as the API shows it (never its digest)."""
    return {
        "id": record.id,
        "organization_id": record.organization_id,
        "name": record.name,
        "role": record.role,
        "created_at": iso_ms(record.created_at_ms) if record.created_at_ms else None,
        "revoked_at": iso_ms(record.revoked_at_ms) if record.revoked_at_ms is not None else None,
    }


class ApiKeyApi:
    """The handlers; they read and write the store: call them off the event loop."""

    def __init__(self, keys: ApiKeyService, *, operator_organization_id: str,
                 organizations: Callable[[], set[str]]):
        self.keys = keys
        self.operator = operator_organization_id
        self.organizations = organizations

    def _target(self, who: Principal, named: Any) -> str | ApiResponse:
        """The organization a request acts on: the caller's, or the one the operator names."""
        if named is None or named == who.organization_id:
            return who.organization_id
        if not isinstance(named, str):
            return validation({"organization_id": [INVALID_TYPE]})
        if who.organization_id != self.operator:
            return error(403, "forbidden")
        if named not in self.organizations():
            return error(404, "organization_not_found")
        return named

    def list(self, who: Principal, query: Mapping[str, str]) -> ApiResponse:
        """A page of the organization's keys, oldest first, revoked ones included."""
        org = self._target(who, query.get("organization_id"))
        if isinstance(org, ApiResponse):
            return org
        page = requested_page(query.get("page"), query.get("per_page"))
        if not isinstance(page, Page):
            return page
        keys = self.keys.list(org)
        return ApiResponse(200, {"api_keys": [render(k) for k in page.of(keys)],
                                 "meta": page.meta(len(keys))})

    def create(self, who: Principal, body: bytes) -> ApiResponse:
        """A new key: ``{"api_key": {"role", "name"?, "organization_id"?}}``."""
        raw, problem = parse_json(body, "api_key")
        if problem:
            return problem
        if not isinstance(raw, dict):
            return validation({"api_key": [INVALID_TYPE]})
        org = self._target(who, raw.get("organization_id"))
        if isinstance(org, ApiResponse):
            return org
        role, name = raw.get("role"), raw.get("name", "")
        details: dict[str, list[str]] = {}
        if role is None:
            details["role"] = [VALUE_IS_MANDATORY]
        elif role not in _ROLES:
            details["role"] = [INVALID_VALUE]
        if not isinstance(name, str):
            details["name"] = [INVALID_TYPE]
        elif len(name) > MAX_ID_LENGTH:
            details["name"] = [VALUE_IS_TOO_LONG]
        if details:
            return validation(details)
        created = self.keys.create(org, Role(role), name)
        return ApiResponse(200, {"api_key": {**render(created.record), "value": created.key}})

    def revoke(self, who: Principal, key_id: str, query: Mapping[str, str]) -> ApiResponse:
        """Revoke one key of the organization (a revoked key: unchanged)."""
        org = self._target(who, query.get("organization_id"))
        if isinstance(org, ApiResponse):
            return org
        if key_id == who.key_id:
            return validation({"api_key": ["key_in_use"]})
        revoked = self.keys.revoke(org, key_id)
        if revoked is None:
            return error(404, "api_key_not_found")
        return ApiResponse(200, {"api_key": render(revoked)})
