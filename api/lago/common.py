"""What every Lago resource handler shares: query helpers, pagination, the catalog access
(:class:`LagoContext`) and the rules that span resources (a subscription's status, the plans
charging a metric, ending a subscription)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from api.envelope import ApiResponse, parse_json, validation
from api.pagination import Page, requested_page
from schemas.catalog import CatalogValidationError, Plan, Subscription
from services.catalog import CatalogService
from sinks.store import UsageStore

Query = Mapping[str, str] | Sequence[tuple[str, str]]

CLIENT_MANAGED = ("lago_id", "created_at", "updated_at")


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z`` (None stays None)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _pairs(query: Query | None) -> list[tuple[str, str]]:
    if query is None:
        return []
    if isinstance(query, Mapping):
        return [(str(k), str(v)) for k, v in query.items()]
    return [(str(k), str(v)) for k, v in query]


def first(query: Query | None, key: str) -> str | None:
    """The first value of ``key`` in the query."""
    for k, v in _pairs(query):
        if k == key:
            return v
    return None


def every(query: Query | None, *keys: str) -> list[str]:
    """Every value of any of ``keys`` (``status[]=…&status[]=…``)."""
    return [v for k, v in _pairs(query) if k in keys]


def lago_input(body: bytes, root: str) -> tuple[dict[str, Any] | None, ApiResponse | None]:
    """The object under ``root``: 400 if malformed or missing, 422 if not an object.

    Fields the server manages (``lago_id``, ``created_at``, ``updated_at``) are dropped.
    """
    raw, problem = parse_json(body, root)
    if problem:
        return None, problem
    if not isinstance(raw, dict):
        return None, validation({root: ["invalid_type"]})
    return {k: v for k, v in raw.items() if k not in CLIENT_MANAGED}, None


def paginate(
    root: str, items: list[Any], query: Query | None, serialize: Callable[[Any], dict[str, Any]]
) -> ApiResponse:
    """One page of ``items`` with Lago's ``meta`` (see :mod:`api.pagination`; a bad
    ``page`` or ``per_page`` is a 422)."""
    page = requested_page(first(query, "page"), first(query, "per_page"))
    if not isinstance(page, Page):
        return page
    return ApiResponse(200, {
        root: [serialize(item) for item in page.of(items)],
        "meta": page.meta(len(items)),
    })


class LagoContext:
    """The catalog, the store and the clock the resource handlers share, and one lock:
    check-then-write sequences (code already taken? subscription already active?) are atomic
    within this process."""

    def __init__(
        self, catalog: CatalogService, store: UsageStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.catalog = catalog
        self.store = store
        self.clock = clock
        self.lock = threading.RLock()

    def now(self) -> str:
        """The clock's time, as Lago prints it."""
        return iso(self.clock()) or ""

    def apply(self, org: str, items: list[tuple[str, Mapping[str, Any]]]) -> ApiResponse | None:
        """Apply catalog changes at once; a 422 when one is invalid (nothing applied)."""
        try:
            self.catalog.apply_many(org, items)
        except CatalogValidationError as exc:
            return validation(exc.details)
        return None

    def created_at(self, body: Mapping[str, Any] | None) -> str:
        """A resource's creation time (now for one applied through the catalog document,
        which carries none)."""
        value = (body or {}).get("created_at")
        return value if isinstance(value, str) and value else self.now()

    def newest_first(self, org: str, kind: str, items: list[Any]) -> list[Any]:
        """``items`` by creation time, newest first (then by key)."""
        def created(item: Any) -> str:
            body = self.catalog.body(org, kind, CatalogService.key_of(item)) or {}
            value = body.get("created_at")
            return value if isinstance(value, str) else ""

        ordered = sorted(items, key=CatalogService.key_of)
        return sorted(ordered, key=created, reverse=True)

    def status(self, sub: Subscription) -> str:
        """``terminated``, ``pending`` (not started yet) or ``active``, now."""
        now = self.clock()
        if sub.terminated_at is not None and sub.terminated_at <= now:
            return "terminated"
        if sub.started_at > now:
            return "pending"
        return "active"

    def plans_using(self, org: str, metric_code: str) -> list[Plan]:
        """The plans with a charge on the metric."""
        return [
            p for p in self.catalog.list(org, "plan")
            if any(c.billable_metric_code == metric_code for c in p.charges)
        ]

    def active_subscriptions(self, org: str, plan_codes: set[str]) -> list[Subscription]:
        """The active subscriptions to any of the plans."""
        return [
            s for s in self.catalog.list(org, "subscription")
            if s.plan_code in plan_codes and self.status(s) == "active"
        ]

    def end_subscription(self, org: str, sub: Subscription) -> Subscription:
        """Terminate now; a pending one (not started yet) is canceled, i.e. removed."""
        if sub.started_at > self.clock():
            self.catalog.delete(org, "subscription", sub.id)
            return sub
        ended = self.catalog.terminate_subscription(org, sub.external_id, at=self.clock())
        return ended or sub
