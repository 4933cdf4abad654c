"""In-memory lookups built once per catalog snapshot, so enrichment does no I/O per event.

Metrics and plans are versioned: each change has an ``effective_from`` time, and an event is
enriched with the version in force at its timestamp (the latest version that started at or
before it). An event older than the first version uses the first version, so a backfill sent
after the catalog was created is still priced. A deleted resource is a version of ``None``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from schemas.catalog import BillableMetric, Catalog, Charge, Customer, Plan, Subscription

Resource = BillableMetric | Plan | Customer | Subscription
Version = tuple[int, Resource | None]  # (effective_from_ms, resource or None when deleted)
#: A filter's match and grouping: (filter id, grouped_by).
Match = tuple[str, tuple[tuple[str, str], ...]]
_R = TypeVar("_R", bound=Resource)
_NO_END = 2**63  # an active subscription's end, in milliseconds
_ROUTE_CACHE_LIMIT = 200_000  # routes kept per index before the memo starts afresh


@dataclass(frozen=True, slots=True)
class PreparedFilter:
    """A charge filter ready for matching: key -> allowed canonical values."""

    id: str
    keys: tuple[str, ...]
    allowed: tuple[frozenset[str], ...]
    pricing_group_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PreparedCharge:
    """A charge with its filters sorted most-specific first (ties keep declaration order).

    ``keys`` are the property names the filter match and the grouping read; ``matches`` memoizes
    (filter id, grouped_by) by the tuple of those properties' values (filled by the enricher).
    """

    charge: Charge
    filters: tuple[PreparedFilter, ...]
    keys: tuple[str, ...] = ()
    matches: dict[tuple[object, ...], Match] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )


@dataclass(frozen=True, slots=True)
class Route:
    """What enrichment needs for one (organization, subscription external id, metric code),
    constant for event timestamps in ``[valid_from, valid_to)``.

    ``metric`` is None for an unknown (or deleted) metric, ``subscription`` None when none is
    active; ``charges`` are the plan's charges on the metric.
    """

    metric: BillableMetric | None
    subscription: Subscription | None
    plan_id: str
    customer_id: str
    charges: tuple[PreparedCharge, ...]
    valid_from: int
    valid_to: int


class _History(Generic[_R]):
    """Versions of one resource, ordered by effective time."""

    __slots__ = ("starts", "values")
    starts: list[int]
    values: list[_R | None]

    def __init__(self, versions: Sequence[tuple[int, _R | None]]):
        ordered = sorted(versions, key=lambda v: v[0])
        self.starts = [v[0] for v in ordered]
        self.values = [v[1] for v in ordered]

    def at(self, timestamp_ms: int) -> _R | None:
        i = bisect.bisect_right(self.starts, timestamp_ms) - 1
        return self.values[max(i, 0)]

    def span(self, timestamp_ms: int) -> tuple[int, int]:
        """The time range around ``timestamp_ms`` in which :meth:`at` returns the same version."""
        i = bisect.bisect_right(self.starts, timestamp_ms)
        low = self.starts[i - 1] if i > 1 else -_NO_END  # the first version also covers before
        high = self.starts[i] if i < len(self.starts) else _NO_END
        return low, high

    @property
    def latest(self) -> _R | None:
        return self.values[-1]


def _versions_of(kind: type[_R], versions: Sequence[Version]) -> list[tuple[int, _R | None]]:
    """``versions`` of a ``kind`` resource; a TypeError names the first of another kind."""
    typed: list[tuple[int, _R | None]] = []
    for start, resource in versions:
        if resource is not None and not isinstance(resource, kind):
            raise TypeError(f"a {type(resource).__name__} in a {kind.__name__} history")
        typed.append((start, resource))
    return typed


class CatalogIndex:
    """Lookups by (organization, key) over one immutable catalog snapshot."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        history: Mapping[tuple[str, str, str], Sequence[Version]] | None = None,
        version: int = 0,
    ):
        """Build from a flat :class:`Catalog` (every resource in force since forever) or from a
        ``history`` keyed by (organization, kind, key)."""
        if history is None:
            history = _history_of(catalog or Catalog())
        self.version = version or (catalog.version if catalog else 0)
        split = _split(history)
        self._metric_history = split.metrics
        self._plan_history = split.plans
        self.metrics = _latest(split.metrics)
        self.plans = _latest(split.plans)
        self.customers = split.customers
        # latest started first, so the first active match is the one SPEC §3.3 picks
        self.subscriptions: dict[tuple[str, str], tuple[Subscription, ...]] = {
            key: tuple(sorted(subs, key=lambda s: s.started_at, reverse=True))
            for key, subs in split.subscriptions.items()
        }
        # the same, with lifetimes as milliseconds for the per-event lookup
        self._lifetimes: dict[tuple[str, str], tuple[tuple[int, int, Subscription], ...]] = {
            key: tuple(_lifetime(s) for s in subs) for key, subs in self.subscriptions.items()
        }
        self._charges: dict[int, dict[str, tuple[PreparedCharge, ...]]] = {}
        self._routes: dict[tuple[str, str, str], Route] = {}
        for hist in self._plan_history.values():
            for plan in hist.values:
                if isinstance(plan, Plan):
                    self._charges[id(plan)] = _prepare_plan(plan)

    def metric_at(
        self, organization_id: str, code: str, timestamp_ms: int
    ) -> BillableMetric | None:
        """The metric version in force at ``timestamp_ms`` (None if unknown or deleted then)."""
        hist = self._metric_history.get((organization_id, code))
        return None if hist is None else hist.at(timestamp_ms)

    def plan_at(self, organization_id: str, code: str, timestamp_ms: int) -> Plan | None:
        """The plan version in force at ``timestamp_ms`` (None if unknown or deleted then)."""
        hist = self._plan_history.get((organization_id, code))
        return None if hist is None else hist.at(timestamp_ms)

    def subscription_at(
        self, organization_id: str, external_id: str, timestamp_ms: int
    ) -> Subscription | None:
        """The subscription in force at ``timestamp_ms`` (latest started wins), or None."""
        for start, end, sub in self._lifetimes.get((organization_id, external_id), ()):
            if start <= timestamp_ms <= end:
                return sub
        return None

    def charges_for(self, plan: Plan, metric_code: str) -> tuple[PreparedCharge, ...]:
        """Charges of this plan version that price ``metric_code``."""
        prepared = self._charges.get(id(plan))
        if prepared is None:  # a plan object from outside this index: not cached
            prepared = _prepare_plan(plan)
        return prepared.get(metric_code, ())

    def route(
        self, organization_id: str, external_subscription_id: str, code: str, timestamp_ms: int
    ) -> Route:
        """Metric, subscription, plan, customer and charges in force at ``timestamp_ms``.

        The same answer as :meth:`metric_at`, :meth:`subscription_at`, :meth:`plan_at` and
        :meth:`charges_for` together, memoized per key with the time range it holds for, so the
        usual event costs one dict lookup.
        """
        key = (organization_id, external_subscription_id, code)
        route = self._routes.get(key)
        if route is not None and route.valid_from <= timestamp_ms < route.valid_to:
            return route
        route = self._build_route(key, timestamp_ms)
        if len(self._routes) >= _ROUTE_CACHE_LIMIT:
            self._routes.clear()
        self._routes[key] = route
        return route

    def _build_route(self, key: tuple[str, str, str], timestamp_ms: int) -> Route:
        org, external_id, code = key
        low, high = -_NO_END, _NO_END

        def narrow(span: tuple[int, int]) -> None:
            nonlocal low, high
            low, high = max(low, span[0]), min(high, span[1])

        metric_history = self._metric_history.get((org, code))
        metric = None
        if metric_history is not None:
            metric = metric_history.at(timestamp_ms)
            narrow(metric_history.span(timestamp_ms))
        sub = self.subscription_at(org, external_id, timestamp_ms)
        for start, end, _ in self._lifetimes.get((org, external_id), ()):
            # the choice of subscription changes only at a lifetime's first or last instant
            for edge in (start, end + 1):
                if edge <= timestamp_ms:
                    low = max(low, edge)
                else:
                    high = min(high, edge)
        plan = None
        if sub is not None:
            plan_history = self._plan_history.get((org, sub.plan_code))
            if plan_history is not None:
                plan = plan_history.at(timestamp_ms)
                narrow(plan_history.span(timestamp_ms))
        customer = self.customers.get((org, sub.external_customer_id)) if sub else None
        charges = (
            self.charges_for(plan, metric.code) if plan is not None and metric is not None else ()
        )
        return Route(
            metric=metric,
            subscription=sub,
            plan_id=plan.id if plan is not None else "",
            customer_id=customer.id if customer is not None else "",
            charges=charges,
            valid_from=low,
            valid_to=high,
        )

    def subscription_by_id(self, organization_id: str, external_id: str) -> Subscription | None:
        """The most recently started subscription with this external id."""
        subs = self.subscriptions.get((organization_id, external_id), ())
        return subs[0] if subs else None


@dataclass(slots=True)
class _Split:
    """A catalog history by kind: the versions of metrics and plans by (organization, code),
    the latest customers by (organization, external id) and the latest subscriptions by
    (organization, subscription external id)."""

    metrics: dict[tuple[str, str], _History[BillableMetric]] = field(default_factory=dict)
    plans: dict[tuple[str, str], _History[Plan]] = field(default_factory=dict)
    customers: dict[tuple[str, str], Customer] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], list[Subscription]] = field(
        default_factory=lambda: defaultdict(list)
    )


def _split(history: Mapping[tuple[str, str, str], Sequence[Version]]) -> _Split:
    split = _Split()
    for (org, kind, key), versions in history.items():
        if not versions:
            continue
        if kind == "billable_metric":
            split.metrics[(org, key)] = _History(_versions_of(BillableMetric, versions))
            continue
        if kind == "plan":
            split.plans[(org, key)] = _History(_versions_of(Plan, versions))
            continue
        latest = _History(versions).latest
        if isinstance(latest, Customer):
            split.customers[(org, key)] = latest
        elif isinstance(latest, Subscription):
            split.subscriptions[(org, latest.external_id)].append(latest)
    return split


def _latest(histories: Mapping[tuple[str, str], _History[_R]]) -> dict[tuple[str, str], _R]:
    """The latest version of each resource, deleted ones left out."""
    return {k: latest for k, h in histories.items() if (latest := h.latest) is not None}


def _lifetime(sub: Subscription) -> tuple[int, int, Subscription]:
    """(start, end, subscription) in milliseconds, both included; no end: ``_NO_END``."""
    end = sub.terminated_at_ms
    return sub.started_at_ms, _NO_END if end is None else end, sub


def _history_of(catalog: Catalog) -> dict[tuple[str, str, str], list[Version]]:
    history: dict[tuple[str, str, str], list[Version]] = {}
    for m in catalog.metrics:
        history[(m.organization_id, "billable_metric", m.code)] = [(0, m)]
    for p in catalog.plans:
        history[(p.organization_id, "plan", p.code)] = [(0, p)]
    for c in catalog.customers:
        history[(c.organization_id, "customer", c.external_id)] = [(0, c)]
    for s in catalog.subscriptions:
        history[(s.organization_id, "subscription", s.id)] = [(0, s)]
    return history


def _prepare_plan(plan: Plan) -> dict[str, tuple[PreparedCharge, ...]]:
    grouped: dict[str, list[PreparedCharge]] = defaultdict(list)
    for charge in plan.charges:
        grouped[charge.billable_metric_code].append(_prepare(charge))
    return {code: tuple(charges) for code, charges in grouped.items()}


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
    keys = {k for f in prepared for k in (*f.keys, *f.pricing_group_keys)}
    keys.update(charge.pricing_group_keys)
    return PreparedCharge(charge=charge, filters=tuple(prepared), keys=tuple(sorted(keys)))
