"""In-memory lookups built once per catalog snapshot, so enrichment does no I/O per event."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from schemas.catalog import BillableMetric, Catalog, Charge, Customer, Plan, Subscription


@dataclass(frozen=True, slots=True)
class PreparedFilter:
    """A charge filter ready for matching: key -> allowed canonical values."""

    id: str
    keys: tuple[str, ...]
    allowed: tuple[frozenset[str], ...]
    pricing_group_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PreparedCharge:
    """A charge with its filters sorted most-specific first (ties keep declaration order)."""

    charge: Charge
    filters: tuple[PreparedFilter, ...]


class CatalogIndex:
    """Lookups by (organization, key) over one immutable :class:`Catalog` snapshot."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.metrics: dict[tuple[str, str], BillableMetric] = {
            (m.organization_id, m.code): m for m in catalog.metrics
        }
        self.plans: dict[tuple[str, str], Plan] = {
            (p.organization_id, p.code): p for p in catalog.plans
        }
        self.customers: dict[tuple[str, str], Customer] = {
            (c.organization_id, c.external_id): c for c in catalog.customers
        }
        by_external: dict[tuple[str, str], list[Subscription]] = defaultdict(list)
        for sub in catalog.subscriptions:
            by_external[(sub.organization_id, sub.external_id)].append(sub)
        # latest started first, so the first active match is the one SPEC §3.3 picks
        self.subscriptions: dict[tuple[str, str], tuple[Subscription, ...]] = {
            key: tuple(sorted(subs, key=lambda s: s.started_at, reverse=True))
            for key, subs in by_external.items()
        }
        self._charges: dict[tuple[str, str], tuple[PreparedCharge, ...]] = {}
        for plan in catalog.plans:
            grouped: dict[str, list[PreparedCharge]] = defaultdict(list)
            for charge in plan.charges:
                grouped[charge.billable_metric_code].append(_prepare(charge))
            for code, charges in grouped.items():
                self._charges[(plan.id, code)] = tuple(charges)

    def subscription_at(
        self, organization_id: str, external_id: str, timestamp_ms: int
    ) -> Subscription | None:
        """The subscription in force at ``timestamp_ms`` (latest started wins), or None."""
        for sub in self.subscriptions.get((organization_id, external_id), ()):
            if sub.active_at(timestamp_ms):
                return sub
        return None

    def charges_for(self, plan_id: str, metric_code: str) -> tuple[PreparedCharge, ...]:
        """Charges of ``plan_id`` that price ``metric_code``."""
        return self._charges.get((plan_id, metric_code), ())

    def subscription_by_id(self, organization_id: str, external_id: str) -> Subscription | None:
        """The most recently started subscription with this external id."""
        subs = self.subscriptions.get((organization_id, external_id), ())
        return subs[0] if subs else None


def _prepare(charge: Charge) -> PreparedCharge:
    prepared = [
        PreparedFilter(
            id=f.id,
            keys=tuple(k for k, _ in f.values),
            allowed=tuple(frozenset(v) for _, v in f.values),
            pricing_group_keys=tuple(
                f.properties.get("pricing_group_keys") or charge.pricing_group_keys
            ),
        )
        for f in charge.filters
    ]
    # stable sort: more keys first, declaration order among equals
    prepared.sort(key=lambda f: -len(f.keys))
    return PreparedCharge(charge=charge, filters=tuple(prepared))
