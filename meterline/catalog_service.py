"""The catalog: validated resources kept durably in the store and as an in-memory index.

Writes go to the store first (durable), then the in-memory :class:`CatalogIndex` is rebuilt and
swapped in one assignment, so the hot path always sees one consistent snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from billing import validate_charge_properties
from enrichment.catalog_index import CatalogIndex
from schemas.catalog import (
    BillableMetric,
    Catalog,
    CatalogValidationError,
    Customer,
    Plan,
    Subscription,
    parse_billable_metric,
    parse_customer,
    parse_plan,
    parse_subscription,
)
from sinks.store import CatalogDoc, Store

KINDS = ("billable_metric", "plan", "customer", "subscription")
_DOC_KEYS = {
    "billable_metrics": "billable_metric",
    "plans": "plan",
    "customers": "customer",
    "subscriptions": "subscription",
}


class CatalogService:
    """Validates, stores and indexes catalog resources."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._resources: dict[tuple[str, str, str], Any] = {}
        self._index = CatalogIndex(Catalog())
        self.version = 0

    @property
    def index(self) -> CatalogIndex:
        """The current snapshot (replaced, never mutated)."""
        return self._index

    def load(self) -> None:
        """Rebuild the in-memory catalog from the store (at start)."""
        with self._lock:
            for doc in self.store.load_catalog_docs():
                key = (doc.organization_id, doc.kind, doc.key)
                if doc.deleted:
                    self._resources.pop(key, None)
                else:
                    self._resources[key] = self._parse(doc.kind, orjson.loads(doc.body),
                                                       doc.organization_id)
            self._rebuild()

    def _parse(self, kind: str, body: Mapping[str, Any], org: str) -> Any:
        if kind == "billable_metric":
            return parse_billable_metric(body, org)
        if kind == "plan":
            return _validated_plan(parse_plan(body, org))
        if kind == "customer":
            return parse_customer(body, org)
        if kind == "subscription":
            return parse_subscription(body, org, now=self.clock())
        raise ValueError(f"unknown catalog kind {kind!r}")

    @staticmethod
    def _key(resource: Any) -> str:
        if isinstance(resource, BillableMetric | Plan):
            return resource.code
        if isinstance(resource, Customer):
            return resource.external_id
        return resource.id

    def apply(self, organization_id: str, kind: str, body: Mapping[str, Any]) -> Any:
        """Validate and store one resource (create or replace); return the parsed resource."""
        return self.apply_many(organization_id, [(kind, body)])[0]

    def apply_many(
        self, organization_id: str, items: list[tuple[str, Mapping[str, Any]]]
    ) -> list[Any]:
        """Validate every item first, then store them all; nothing is stored if one is invalid."""
        parsed: list[tuple[str, Any, dict]] = []
        errors: dict[str, list[str]] = {}
        for i, (kind, body) in enumerate(items):
            try:
                resource = self._parse(kind, body, organization_id)
            except CatalogValidationError as exc:
                for field, codes in exc.details.items():
                    key = field if len(items) == 1 else f"{kind}[{i}].{field}"
                    errors.setdefault(key, []).extend(codes)
                continue
            stored = dict(body)
            if isinstance(resource, Subscription):  # pin the defaulted start time
                stored["started_at"] = resource.started_at.isoformat()
            parsed.append((kind, resource, stored))
        if errors:
            raise CatalogValidationError(errors)
        self._check_references(organization_id, [r for _, r, _ in parsed])
        with self._lock:
            self.store.put_catalog_docs(
                [
                    CatalogDoc(organization_id, kind, self._key(r), orjson.dumps(body).decode())
                    for kind, r, body in parsed
                ]
            )
            for kind, resource, _ in parsed:
                self._resources[(organization_id, kind, self._key(resource))] = resource
            self._rebuild()
        return [r for _, r, _ in parsed]

    def apply_document(self, organization_id: str, document: Mapping[str, Any]) -> dict[str, int]:
        """Apply a catalog file with sections billable_metrics, plans, customers, subscriptions."""
        unknown = set(document) - set(_DOC_KEYS)
        if unknown:
            raise CatalogValidationError({k: ["unknown_section"] for k in sorted(unknown)})
        items: list[tuple[str, Mapping[str, Any]]] = []
        for section, kind in _DOC_KEYS.items():
            entries = document.get(section) or []
            if not isinstance(entries, list):
                raise CatalogValidationError({section: ["invalid_type"]})
            items.extend((kind, entry) for entry in entries)
        self.apply_many(organization_id, items)
        return {section: len(document.get(section) or []) for section in _DOC_KEYS}

    def _check_references(self, org: str, new: list[Any]) -> None:
        metrics = {k[2] for k in self._resources if k[0] == org and k[1] == "billable_metric"}
        metrics |= {r.code for r in new if isinstance(r, BillableMetric)}
        plans = {k[2] for k in self._resources if k[0] == org and k[1] == "plan"}
        plans |= {r.code for r in new if isinstance(r, Plan)}
        errors: dict[str, list[str]] = {}
        for resource in new:
            if isinstance(resource, Plan):
                for charge in resource.charges:
                    if charge.billable_metric_code not in metrics:
                        errors.setdefault("billable_metric_code", []).append("metric_not_found")
            if isinstance(resource, Subscription) and resource.plan_code not in plans:
                errors.setdefault("plan_code", []).append("plan_not_found")
        if errors:
            raise CatalogValidationError(errors)

    def _rebuild(self) -> None:
        values = list(self._resources.values())
        self.version += 1
        self._index = CatalogIndex(
            Catalog(
                metrics=tuple(v for v in values if isinstance(v, BillableMetric)),
                plans=tuple(v for v in values if isinstance(v, Plan)),
                customers=tuple(v for v in values if isinstance(v, Customer)),
                subscriptions=tuple(v for v in values if isinstance(v, Subscription)),
                version=self.version,
            )
        )


def _validated_plan(plan: Plan) -> Plan:
    """Reject a plan whose charge (or charge filter) properties fail Lago's validation."""
    errors: dict[str, list[str]] = {}
    for charge in plan.charges:
        for props in (charge.properties, *(f.properties for f in charge.filters)):
            for field, codes in validate_charge_properties(charge.charge_model, props).items():
                known = errors.setdefault(field, [])
                known.extend(c for c in codes if c not in known)
    if errors:
        raise CatalogValidationError(errors)
    return plan
