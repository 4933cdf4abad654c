"""The catalog: validated, versioned resources kept in the store and as an in-memory index.

Every change is a new version with an effective time (when it was made). Writes go to the store
first (durable), then the in-memory :class:`CatalogIndex` is rebuilt and swapped in one
assignment (the hot path always sees one consistent snapshot), then listeners are told (the
compacted catalog topic that carries changes to the other workers).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing import UnknownCurrency, currency_exponent, validate_charge_properties
from enrichment.catalog_index import CatalogIndex
from schemas import exact_json
from schemas.catalog import (
    BillableMetric,
    CatalogValidationError,
    Customer,
    Plan,
    Subscription,
    charge_metric_errors,
    parse_billable_metric,
    parse_customer,
    parse_plan,
    parse_subscription,
)
from sinks.store import CatalogDoc, CatalogStore

log = logging.getLogger("meterline.catalog")

KINDS = ("billable_metric", "plan", "customer", "subscription")
_DOC_KEYS = {
    "billable_metrics": "billable_metric",
    "plans": "plan",
    "customers": "customer",
    "subscriptions": "subscription",
}


@dataclass(frozen=True, slots=True)
class _Version:
    version: int
    effective_at_ms: int
    resource: Any  # None when deleted
    body: dict | None


class CatalogService:
    """Validates, stores, versions and indexes catalog resources."""

    def __init__(
        self, store: CatalogStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ):
        self.store = store
        self.clock = clock
        self._lock = threading.RLock()
        self._history: dict[tuple[str, str, str], list[_Version]] = {}
        self._index = CatalogIndex()
        self._last_version = 0
        self.version = 0
        self.changed_at_ms = 0  # effective time of the newest version (0: no catalog yet)
        self.listeners: list[Callable[[list[CatalogDoc]], None]] = []
        # (organization, kind, key, version) of stored versions today's rules reject
        self.skipped_versions: list[tuple[str, str, str, int]] = []
        # run on every change before it is written; raise CatalogValidationError to refuse it
        # (the catalog topic refuses versions too large to publish)
        self.checks: list[Callable[[list[CatalogDoc]], None]] = []

    @property
    def index(self) -> CatalogIndex:
        """The current snapshot (replaced, never mutated)."""
        return self._index

    # --- loading and merging -------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild the in-memory catalog from the store's full history (at start)."""
        self.merge(self.store.load_catalog_history())

    def merge(self, docs: Iterable[CatalogDoc]) -> int:
        """Add versions we do not have yet (from the store or the catalog topic); idempotent.

        Returns how many versions were new.
        """
        added = 0
        with self._lock:
            for doc in docs:
                versions = self._history.setdefault((doc.organization_id, doc.kind, doc.key), [])
                if any(v.version == doc.version for v in versions):
                    continue
                body = None if doc.deleted else exact_json.loads(doc.body)
                try:
                    resource = None if doc.deleted else self._parse(
                        doc.kind, body, doc.organization_id)
                except (CatalogValidationError, ValueError) as exc:
                    # Stored by an earlier release whose rules were looser: never stop the
                    # worker over it; the previous version stays in force.
                    log.error("catalog: %s %s version %d is invalid today and is skipped: %s",
                              doc.kind, doc.key, doc.version, exc)
                    self.skipped_versions.append((doc.organization_id, doc.kind, doc.key,
                                                  doc.version))
                    continue
                versions.append(_Version(doc.version, doc.effective_at_ms, resource, body))
                self.changed_at_ms = max(self.changed_at_ms, doc.effective_at_ms)
                versions.sort(key=lambda v: v.version)
                self._last_version = max(self._last_version, doc.version)
                added += 1
            if added:
                self._rebuild()
        return added

    # --- reads ---------------------------------------------------------------------------------
    def _latest(self, org: str, kind: str, key: str) -> _Version | None:
        versions = self._history.get((org, kind, key))
        return versions[-1] if versions else None

    def get(self, org: str, kind: str, key: str) -> Any:
        """The current resource (metric/plan code, customer external id, subscription id)."""
        latest = self._latest(org, kind, key)
        return latest.resource if latest else None

    def body(self, org: str, kind: str, key: str) -> dict | None:
        """The stored Lago body of the current version (None if missing or deleted)."""
        latest = self._latest(org, kind, key)
        return latest.body if latest else None

    def list(self, org: str, kind: str) -> list[Any]:
        """Current resources of one kind, in key order."""
        out = []
        for (o, k, _key), versions in sorted(self._history.items()):
            if o == org and k == kind and versions[-1].resource is not None:
                out.append(versions[-1].resource)
        return out

    def history_docs(self, org: str, kind: str, key: str) -> builtins.list[CatalogDoc]:
        """Every version of one resource, as documents (for the catalog topic)."""
        return [
            CatalogDoc(
                org, kind, key,
                "" if v.body is None else exact_json.dumps(v.body).decode(),
                deleted=v.body is None, version=v.version, effective_at_ms=v.effective_at_ms,
            )
            for v in self._history.get((org, kind, key), [])
        ]

    def subscriptions(self, org: str, external_id: str) -> builtins.list[Subscription]:
        """Every current subscription with this external id, latest started first."""
        subs = [s for s in self.list(org, "subscription") if s.external_id == external_id]
        return sorted(subs, key=lambda s: s.started_at, reverse=True)

    # --- writes --------------------------------------------------------------------------------
    def _parse(self, kind: str, body: Any, org: str) -> Any:
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
    def key_of(resource: Any) -> str:
        """The storage key of a resource."""
        if isinstance(resource, BillableMetric | Plan):
            return resource.code
        if isinstance(resource, Customer):
            return resource.external_id
        return resource.id

    def apply(self, organization_id: str, kind: str, body: Mapping[str, Any]) -> Any:
        """Validate and store one resource (create or replace); return the parsed resource."""
        return self.apply_many(organization_id, [(kind, body)])[0]

    def apply_many(
        self, organization_id: str, items: builtins.list[tuple[str, Mapping[str, Any]]]
    ) -> builtins.list[Any]:
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
        self._write(
            [
                (organization_id, kind, self.key_of(resource), body)
                for kind, resource, body in parsed
            ]
        )
        return [r for _, r, _ in parsed]

    def delete(self, org: str, kind: str, key: str) -> Any:
        """Delete a resource from now on (earlier events keep their version); returns it."""
        current = self.get(org, kind, key)
        if current is not None:
            self._write([(org, kind, key, None)])
        return current

    def terminate_subscription(
        self, org: str, external_id: str, at: datetime | None = None
    ) -> Subscription | None:
        """Set ``terminated_at`` (default now) on the active subscription with this id."""
        subs = [s for s in self.subscriptions(org, external_id) if s.terminated_at is None]
        if not subs:
            return None
        sub = subs[0]
        body = dict(self.body(org, "subscription", sub.id) or {})
        body["terminated_at"] = (at or self.clock()).astimezone(UTC).isoformat()
        return self.apply(org, "subscription", body)

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

    def _write(self, changes: builtins.list[tuple[str, str, str, dict | None]]) -> None:
        with self._lock:
            now_ms = int(self.clock().timestamp() * 1000)
            docs = []
            for org, kind, key, body in changes:
                self._last_version = max(time.time_ns(), self._last_version + 1)
                docs.append(
                    CatalogDoc(
                        org, kind, key,
                        # exact: a number read as a Decimal is stored with every digit
                        "" if body is None else exact_json.dumps(body).decode(),
                        deleted=body is None,
                        version=self._last_version,
                        effective_at_ms=now_ms,
                    )
                )
            for check in self.checks:  # nothing is written when one refuses
                check(docs)
            self.store.put_catalog_docs(docs)  # durable first
            self.merge(docs)  # then this process's index
            for listener in self.listeners:  # then the other workers (catalog topic)
                listener(docs)

    def _check_references(self, org: str, new: builtins.list[Any]) -> None:
        metrics = {m.code: m for m in self.list(org, "billable_metric")}
        metrics |= {r.code: r for r in new if isinstance(r, BillableMetric)}
        plans = {self.key_of(p) for p in self.list(org, "plan")}
        plans |= {r.code for r in new if isinstance(r, Plan)}
        errors: dict[str, list[str]] = {}
        for resource in new:
            if isinstance(resource, Plan):
                _check_charges(resource, metrics, errors)
            if isinstance(resource, Subscription) and resource.plan_code not in plans:
                errors.setdefault("plan_code", []).append("plan_not_found")
        if errors:
            raise CatalogValidationError(errors)

    def _rebuild(self) -> None:
        self.version += 1
        self._index = CatalogIndex(
            history={
                key: [(v.effective_at_ms, v.resource) for v in versions]
                for key, versions in self._history.items()
            },
            version=self.version,
        )


def _check_charges(
    plan: Plan, metrics: Mapping[str, BillableMetric], errors: dict[str, list[str]]
) -> None:
    """Each charge's metric exists, and Lago allows the charge on it
    (schemas.catalog.charge_metric_errors: app/models/charge.rb validations, the percentage
    validators, app/models/charge_filter_value.rb)."""
    for charge in plan.charges:
        metric = metrics.get(charge.billable_metric_code)
        if metric is None:
            errors.setdefault("billable_metric_code", []).append("metric_not_found")
            continue
        for field, codes in charge_metric_errors(charge, metric).items():
            known = errors.setdefault(field, [])
            known.extend(c for c in codes if c not in known)


def _validated_plan(plan: Plan) -> Plan:
    """Reject a plan whose charge (or charge filter) properties fail Lago's validation, or
    whose currency is not an ISO 4217 one with a minor unit (Lago: ``amount_currency``
    inclusion in its currency list, ``value_is_invalid``): fees could not be priced in it.
    Amounts are bounded in the plan's currency (billing.validation)."""
    errors: dict[str, list[str]] = {}
    try:
        currency_exponent(plan.amount_currency)
    except UnknownCurrency:
        errors["amount_currency"] = ["value_is_invalid"]
    for charge in plan.charges:
        for props in (charge.properties, *(f.properties for f in charge.filters)):
            for field, codes in validate_charge_properties(
                charge.charge_model, props, plan.amount_currency
            ).items():
                known = errors.setdefault(field, [])
                known.extend(c for c in codes if c not in known)
    if errors:
        raise CatalogValidationError(errors)
    return plan

