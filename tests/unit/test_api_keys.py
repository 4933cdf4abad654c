"""API keys with roles (issue 19): who may call which route, keys made, listed and revoked by
admins, the operator's reach over other organizations, and revocation through the key ring."""

from __future__ import annotations

import orjson
import pytest

from api.api_keys import ApiKeyApi
from api.dead_letters import DeadLetterApi
from api.handlers import Api
from api.lago import LagoControlApi
from api.routes import Route, api_routes
from api.server import authorize
from services.api_keys import ApiKeyService, KeyRing, LiveKeyRing, Principal, Role, new_key_record
from services.catalog import CatalogService
from sinks.memory_store import MemoryStore

OPERATOR_ORG = "default"
ORG = "org-1"


def every_route() -> list[Route]:
    store = MemoryStore()
    catalog = CatalogService(store)  # type: ignore[arg-type]
    ring = LiveKeyRing(store)  # type: ignore[arg-type]
    api = Api(key_ring=ring, catalog=catalog, usage=None, publisher=None)  # type: ignore[arg-type]
    keys = ApiKeyApi(ApiKeyService(store, ring), operator_organization_id=OPERATOR_ORG,  # type: ignore[arg-type]
                     organizations=lambda: set())
    return api_routes(api, lago=LagoControlApi(catalog, store),  # type: ignore[arg-type]
                      dead_letters=DeadLetterApi(None),  # type: ignore[arg-type]
                      api_keys=keys)


def expected_roles(route: Route) -> set[Role]:
    """The policy, stated apart from the table: ingest keys post events and nothing else,
    read keys read anything, admins do everything."""
    if route.method == "POST" and route.path in ("/api/v1/events", "/api/v1/events/batch"):
        return {Role.INGEST, Role.ADMIN}
    if route.method == "GET" and "/api_keys" not in route.path:
        return {Role.READ, Role.ADMIN}
    return {Role.ADMIN}


ROUTES = every_route()


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.parametrize("role", list(Role))
def test_each_role_is_allowed_or_forbidden_on_every_route(route, role):
    answer = authorize(Principal("key_1", ORG, "k", role), route)
    if role in expected_roles(route):
        assert answer is None
    else:
        assert answer is not None and answer.status == 403
        assert answer.body == {"status": 403, "error": "Forbidden", "code": "forbidden"}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_no_valid_key_is_a_401_on_every_route(route):
    answer = authorize(None, route)
    assert answer is not None and answer.status == 401


def test_the_table_has_the_key_routes():
    assert {(r.method, r.path) for r in ROUTES} >= {
        ("GET", "/api/v1/meterline/api_keys"), ("POST", "/api/v1/meterline/api_keys"),
        ("DELETE", "/api/v1/meterline/api_keys/{id}")}


def test_a_revoked_or_unknown_role_key_is_not_in_the_ring():
    import dataclasses

    valid = new_key_record("a", ORG, "valid", Role.READ)
    revoked = dataclasses.replace(new_key_record("b", ORG, "gone"), revoked_at_ms=5)
    odd = new_key_record("c", ORG, "odd", "superuser")
    ring = KeyRing([valid, revoked, odd])
    who = ring.principal("Bearer a")
    assert who == Principal(valid.id, ORG, "valid", Role.READ)
    assert ring.principal("Bearer b") is None and ring.principal("Bearer c") is None


def setup(caller_org: str = ORG, role: Role = Role.ADMIN):
    store = MemoryStore()
    for org in (OPERATOR_ORG, ORG, "org-2"):
        store.ensure_organization(org, org)
    ring = LiveKeyRing(store)  # type: ignore[arg-type]
    service = ApiKeyService(store, ring)  # type: ignore[arg-type]
    mine = service.create(caller_org, role, "mine")
    api = ApiKeyApi(service, operator_organization_id=OPERATOR_ORG,
                    organizations=lambda: {o.id for o in store.organizations()})
    who = ring().principal(f"Bearer {mine.key}")
    assert who is not None
    return api, ring, who


def body(**fields: object) -> bytes:
    return orjson.dumps({"api_key": fields})


def test_a_key_is_shown_once_and_works_at_once_then_fails_at_once_when_revoked():
    api, ring, who = setup()
    made = api.create(who, body(role="ingest", name="producer"))
    assert made.status == 200
    key = made.body["api_key"]
    assert (key["organization_id"], key["role"], key["name"]) == (ORG, "ingest", "producer")
    assert key["created_at"] and key["revoked_at"] is None
    value = key.pop("value")
    assert ring().principal(f"Bearer {value}").role == Role.INGEST
    listed = api.list(who, {}).body["api_keys"]
    assert key in listed and all("value" not in k and "key_hash" not in k for k in listed)
    assert value not in orjson.dumps(listed).decode()
    revoked = api.revoke(who, key["id"], {})
    assert revoked.status == 200 and revoked.body["api_key"]["revoked_at"]
    assert ring().principal(f"Bearer {value}") is None
    again = api.revoke(who, key["id"], {})
    assert again.status == 200 and again.body["api_key"] == revoked.body["api_key"]


def test_rotation_the_new_key_revokes_the_old_one_never_itself():
    api, ring, old = setup()
    new_value = api.create(old, body(role="admin", name="rotated")).body["api_key"]["value"]
    new = ring().principal(f"Bearer {new_value}")
    assert new is not None
    assert api.revoke(old, old.key_id, {}).status == 422  # key_in_use
    assert api.revoke(new, old.key_id, {}).status == 200
    assert ring().principal(f"Bearer {new_value}") == new


@pytest.mark.parametrize(("fields", "field", "code"), [
    ({}, "role", "value_is_mandatory"),
    ({"role": "root"}, "role", "invalid_value"),
    ({"role": "read", "name": 5}, "name", "invalid_type"),
    ({"role": "read", "name": "x" * 10_000}, "name", "value_is_too_long"),
    ({"role": "read", "organization_id": 7}, "organization_id", "invalid_type"),
])
def test_a_bad_key_request_is_a_422(fields, field, code):
    api, _, who = setup()
    answer = api.create(who, body(**fields))
    assert answer.status == 422 and answer.body["error_details"] == {field: [code]}


def test_only_the_operator_reaches_another_organization():
    api, _, tenant = setup(ORG)
    assert api.create(tenant, body(role="read", organization_id="org-2")).status == 403
    assert api.list(tenant, {"organization_id": "org-2"}).status == 403

    api, ring, operator = setup(OPERATOR_ORG)
    made = api.create(operator, body(role="read", organization_id="org-2")).body["api_key"]
    assert made["organization_id"] == "org-2"
    assert ring().principal(f"Bearer {made['value']}").organization_id == "org-2"
    assert [k["id"] for k in api.list(operator, {"organization_id": "org-2"}).body["api_keys"]
            ] == [made["id"]]
    assert api.create(operator, body(role="read", organization_id="nope")).status == 404
    # the key's organization must be named: another organization's key is not found
    assert api.revoke(operator, made["id"], {}).status == 404
    assert api.revoke(operator, made["id"], {"organization_id": "org-2"}).status == 200


def test_a_tenant_cannot_see_or_revoke_another_tenants_key():
    api, _, first = setup(ORG)
    service = api.keys
    other = service.create("org-2", Role.ADMIN, "theirs")
    assert other.record.id not in {k["id"] for k in api.list(first, {}).body["api_keys"]}
    assert api.revoke(first, other.record.id, {}).status == 404
    assert service.find("org-2", other.record.id).revoked_at_ms is None


def test_the_ring_reloads_what_another_worker_changed():
    store = MemoryStore()
    here = LiveKeyRing(store)  # type: ignore[arg-type]
    elsewhere = ApiKeyService(store)  # type: ignore[arg-type]  # another worker: no ring here
    made = elsewhere.create(ORG, Role.READ, "k")
    assert here().principal(f"Bearer {made.key}") is None
    here.reload()
    assert here().principal(f"Bearer {made.key}") is not None
    elsewhere.revoke(ORG, made.record.id)
    here.reload()
    assert here().principal(f"Bearer {made.key}") is None
