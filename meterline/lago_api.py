"""Lago's control-plane API (billable metrics, plans, customers, subscriptions, event lookup).

Request bodies and responses follow Lago's shapes closely enough that the official
``lago-python-client`` works unchanged (its response models are pydantic models with required
fields, so every object here carries what those models require). Errors use Lago's envelope:
400 for malformed JSON or a missing root key, 404 with ``<resource>_not_found``, 422
``validation_errors`` with ``error_details``. :mod:`streams.web_lago` binds it to the web server.

Every method is synchronous (the catalog writes to the store) and scoped to one organization.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from billing import billing_period_bounds
from meterline.api import Api, ApiResponse, error, iso_ms, page_meta
from schemas import exact_json
from schemas.catalog import (
    BillableMetric,
    CatalogValidationError,
    Customer,
    Plan,
    Subscription,
    parse_plan,
    parse_subscription,
    stable_id,
)
from schemas.numbers import decimal_to_string
from services.catalog import CatalogService
from sinks.store import Store

Query = Mapping[str, str] | Sequence[tuple[str, str]]

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
_CLIENT_MANAGED = ("lago_id", "created_at", "updated_at")


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


def _first(query: Query | None, key: str) -> str | None:
    for k, v in _pairs(query):
        if k == key:
            return v
    return None


def _all(query: Query | None, *keys: str) -> list[str]:
    return [v for k, v in _pairs(query) if k in keys]


def _positive_int(text: str | None, default: int) -> int:
    """Kaminari-style: anything that is not a positive integer means the default."""
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    return value if value >= 1 else default


def _validation(details: Mapping[str, list[str]]) -> ApiResponse:
    return error(422, "validation_errors", details)


class LagoControlApi:
    """One method per Lago endpoint; each returns an :class:`ApiResponse`."""

    def __init__(
        self,
        catalog: CatalogService,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.catalog = catalog
        self.store = store
        self.clock = clock
        # check-then-write sequences (code already taken? subscription already active?) are
        # atomic within this process
        self._lock = threading.RLock()

    # --- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _input(body: bytes, root: str) -> tuple[dict[str, Any] | None, ApiResponse | None]:
        """The object under ``root``: 400 if malformed or missing, 422 if not an object.

        Fields the server manages (``lago_id``, ``created_at``, ``updated_at``) are dropped.
        """
        raw, problem = Api.parse_json(body, root)
        if problem:
            return None, problem
        if not isinstance(raw, dict):
            return None, _validation({root: ["invalid_type"]})
        return {k: v for k, v in raw.items() if k not in _CLIENT_MANAGED}, None

    def _now(self) -> str:
        return iso(self.clock()) or ""

    def _apply(self, org: str, items: list[tuple[str, Mapping[str, Any]]]) -> ApiResponse | None:
        try:
            self.catalog.apply_many(org, items)
        except CatalogValidationError as exc:
            return _validation(exc.details)
        return None

    def _created_at(self, body: Mapping[str, Any] | None) -> str:
        value = (body or {}).get("created_at")
        # resources applied through the catalog document carry no creation time
        return value if isinstance(value, str) and value else self._now()

    def _paginate(
        self, root: str, items: list[Any], query: Query | None,
        serialize: Callable[[Any], dict[str, Any]],
    ) -> ApiResponse:
        page = _positive_int(_first(query, "page"), 1)
        per_page = min(_positive_int(_first(query, "per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
        chunk = items[(page - 1) * per_page: page * per_page]
        return ApiResponse(200, {
            root: [serialize(item) for item in chunk],
            "meta": page_meta(page, per_page, len(items)),
        })

    def _newest_first(self, org: str, kind: str, items: list[Any]) -> list[Any]:
        def created(item: Any) -> str:
            body = self.catalog.body(org, kind, CatalogService.key_of(item)) or {}
            value = body.get("created_at")
            return value if isinstance(value, str) else ""

        ordered = sorted(items, key=CatalogService.key_of)
        return sorted(ordered, key=created, reverse=True)

    def _status(self, sub: Subscription) -> str:
        now = self.clock()
        if sub.terminated_at is not None and sub.terminated_at <= now:
            return "terminated"
        if sub.started_at > now:
            return "pending"
        return "active"

    def _plans_using(self, org: str, metric_code: str) -> list[Plan]:
        return [
            p for p in self.catalog.list(org, "plan")
            if any(c.billable_metric_code == metric_code for c in p.charges)
        ]

    def _active_subscriptions(self, org: str, plan_codes: set[str]) -> list[Subscription]:
        return [
            s for s in self.catalog.list(org, "subscription")
            if s.plan_code in plan_codes and self._status(s) == "active"
        ]

    # --- billable metrics ----------------------------------------------------------------------
    def metric_json(self, org: str, metric: BillableMetric) -> dict[str, Any]:
        """Lago's ``billable_metric`` object."""
        body = self.catalog.body(org, "billable_metric", metric.code) or {}
        plans = self._plans_using(org, metric.code)
        return {
            **{k: v for k, v in body.items() if k not in _CLIENT_MANAGED},
            "lago_id": metric.id,
            "name": metric.name,
            "code": metric.code,
            "description": body.get("description"),
            "aggregation_type": metric.aggregation_type,
            "field_name": metric.field_name,
            "expression": body.get("expression"),
            "recurring": metric.recurring,
            "rounding_function": metric.rounding_function,
            "rounding_precision": metric.rounding_precision,
            "weighted_interval": metric.weighted_interval,
            "filters": [{"key": f.key, "values": list(f.values)} for f in metric.filters],
            "created_at": self._created_at(body),
            "plans_count": len(plans),
            "active_subscriptions_count": len(
                self._active_subscriptions(org, {p.code for p in plans})
            ),
            "draft_invoices_count": 0,
        }

    def _metric_response(self, org: str, code: str) -> ApiResponse:
        metric = self.catalog.get(org, "billable_metric", code)
        if metric is None:
            return error(404, "billable_metric_not_found")
        return ApiResponse(200, {"billable_metric": self.metric_json(org, metric)})

    def create_billable_metric(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/billable_metrics``."""
        raw, problem = self._input(body, "billable_metric")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        code = raw.get("code")
        with self._lock:
            if isinstance(code, str) and self.catalog.get(org, "billable_metric", code):
                return _validation({"code": ["value_already_exist"]})
            problem = self._apply(org, [("billable_metric", {**raw, "created_at": self._now()})])
            if problem:
                return problem
            return self._metric_response(org, str(code))

    def update_billable_metric(self, org: str, code: str, body: bytes) -> ApiResponse:
        """``PUT /api/v1/billable_metrics/{code}``: fields given replace the stored ones."""
        raw, problem = self._input(body, "billable_metric")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        with self._lock:
            current = self.catalog.get(org, "billable_metric", code)
            if current is None:
                return error(404, "billable_metric_not_found")
            old = self.catalog.body(org, "billable_metric", code) or {}
            merged = {**old, **raw, "lago_id": current.id,
                      "created_at": self._created_at(old)}
            new_code = merged.get("code")
            if not isinstance(new_code, str) or new_code == code:
                problem = self._apply(org, [("billable_metric", merged)])
                return problem or self._metric_response(org, code)
            # a new code: only for a free code and a metric no plan charges
            if self.catalog.get(org, "billable_metric", new_code) is not None:
                return _validation({"code": ["value_already_exist"]})
            if self._plans_using(org, code):
                return _validation({"code": ["value_is_immutable"]})
            problem = self._apply(org, [("billable_metric", merged)])
            if problem:
                return problem
            self.catalog.delete(org, "billable_metric", code)
            return self._metric_response(org, new_code)

    def get_billable_metric(self, org: str, code: str) -> ApiResponse:
        """``GET /api/v1/billable_metrics/{code}``."""
        return self._metric_response(org, code)

    def list_billable_metrics(self, org: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/billable_metrics?page=&per_page=``."""
        metrics = self._newest_first(org, "billable_metric",
                                     self.catalog.list(org, "billable_metric"))
        return self._paginate("billable_metrics", metrics, query,
                              lambda m: self.metric_json(org, m))

    def delete_billable_metric(self, org: str, code: str) -> ApiResponse:
        """``DELETE /api/v1/billable_metrics/{code}``: as Lago, plans lose their charges on it."""
        with self._lock:
            metric = self.catalog.get(org, "billable_metric", code)
            if metric is None:
                return error(404, "billable_metric_not_found")
            answer = self.metric_json(org, metric)
            plans = []
            for plan in self._plans_using(org, code):
                plan_body = dict(self.catalog.body(org, "plan", plan.code) or {})
                plan_body["charges"] = [
                    c for c in plan_body.get("charges") or []
                    if not (isinstance(c, Mapping) and c.get("billable_metric_code") == code)
                ]
                plans.append(("plan", plan_body))
            if plans:
                problem = self._apply(org, plans)
                if problem:
                    return problem
            self.catalog.delete(org, "billable_metric", code)
            return ApiResponse(200, {"billable_metric": answer})

    # --- plans ---------------------------------------------------------------------------------
    def plan_json(self, org: str, plan: Plan) -> dict[str, Any]:
        """Lago's ``plan`` object with its charges."""
        body = self.catalog.body(org, "plan", plan.code) or {}
        created_at = self._created_at(body)
        metrics = {m.code: m for m in self.catalog.list(org, "billable_metric")}
        raw_charges = [c for c in body.get("charges") or [] if isinstance(c, Mapping)]
        charge_bodies = {str(c.get("lago_id") or c.get("id")): c for c in raw_charges}
        charges = []
        for charge in plan.charges:
            raw = charge_bodies.get(charge.id, {})
            metric = metrics.get(charge.billable_metric_code)
            charges.append({
                **{k: v for k, v in raw.items() if k not in _CLIENT_MANAGED},
                "lago_id": charge.id,
                "lago_billable_metric_id": metric.id if metric else None,
                "billable_metric_code": charge.billable_metric_code,
                "created_at": created_at,
                "charge_model": charge.charge_model,
                "pay_in_advance": charge.pay_in_advance,
                "prorated": charge.prorated,
                "invoiceable": True,
                "regroup_paid_fees": None,
                "invoice_display_name": charge.invoice_display_name,
                "min_amount_cents": charge.min_amount_cents,
                "properties": dict(charge.properties),
                "filters": [
                    {
                        "lago_id": f.id,
                        "invoice_display_name": f.invoice_display_name,
                        "properties": dict(f.properties),
                        "values": {k: list(v) for k, v in f.values},
                    }
                    for f in charge.filters
                ],
                "taxes": [],
            })
        return {
            **{k: v for k, v in body.items() if k not in _CLIENT_MANAGED},
            "lago_id": plan.id,
            "name": plan.name,
            "invoice_display_name": body.get("invoice_display_name"),
            "created_at": created_at,
            "code": plan.code,
            "interval": plan.interval,
            "description": body.get("description"),
            "amount_cents": plan.amount_cents,
            "amount_currency": plan.amount_currency,
            "trial_period": body.get("trial_period"),
            "pay_in_advance": body.get("pay_in_advance") is True,
            "bill_charges_monthly": body.get("bill_charges_monthly"),
            "active_subscriptions_count": len(self._active_subscriptions(org, {plan.code})),
            "draft_invoices_count": 0,
            "charges": charges,
            # invoicing features Meterline does not compute: accepted, not returned
            "fixed_charges": [],
            "minimum_commitment": None,
            "usage_thresholds": [],
            "taxes": [],
        }

    def _plan_response(self, org: str, code: str) -> ApiResponse:
        plan = self.catalog.get(org, "plan", code)
        if plan is None:
            return error(404, "plan_not_found")
        return ApiResponse(200, {"plan": self.plan_json(org, plan)})

    def _prepare_plan(
        self, org: str, raw: dict[str, Any], old: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any] | None, ApiResponse | None]:
        """Validate a whole plan body (``raw``; for an update, the old body merged with the
        new fields): resolve ``billable_metric_id``s, merge charges given by id, and pin the
        charge and filter ids.

        Pinned ids keep a charge's usage when charges are reordered, added or removed.
        """
        charges = raw.get("charges")
        if not isinstance(charges, list):
            return raw, None  # absent (kept) or a wrong type (parse_plan reports it)
        metrics = self.catalog.list(org, "billable_metric")
        by_id = {m.id: m.code for m in metrics}
        codes = {m.code for m in metrics}
        old_charges = {
            str(c.get("lago_id") or c.get("id")): c
            for c in (old or {}).get("charges") or [] if isinstance(c, Mapping)
        }
        prepared: list[Any] = []
        for charge in charges:
            if not isinstance(charge, Mapping):
                prepared.append(charge)
                continue
            charge = dict(charge)
            ref = charge.get("id") or charge.get("lago_id")
            previous = old_charges.get(str(ref)) if isinstance(ref, str) else None
            if previous is not None:
                charge = {**previous, **charge}
                if "filters" in charge and charge["filters"] is not previous.get("filters"):
                    charge["filters"] = _keep_filter_ids(charge["filters"], previous)
            metric_id = charge.get("billable_metric_id")
            if not charge.get("billable_metric_code") and metric_id is not None:
                code = by_id.get(metric_id) if isinstance(metric_id, str) else None
                if code is None:
                    return None, error(404, "billable_metric_not_found")
                charge["billable_metric_code"] = code
            metric_code = charge.get("billable_metric_code")
            if isinstance(metric_code, str) and metric_code and metric_code not in codes:
                return None, error(404, "billable_metric_not_found")
            prepared.append(charge)
        merged = {**raw, "charges": prepared}
        try:
            parsed = parse_plan(merged, org)
        except CatalogValidationError as exc:
            return None, _validation(exc.details)
        for charge, resource in zip(prepared, parsed.charges, strict=True):
            charge["lago_id"] = resource.id
            charge.pop("id", None)
            filters = charge.get("filters")
            if isinstance(filters, list):
                charge["filters"] = [
                    {**f, "lago_id": pf.id}
                    for f, pf in zip(filters, resource.filters, strict=True)
                ]
        return merged, None

    def create_plan(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/plans``."""
        raw, problem = self._input(body, "plan")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        code = raw.get("code")
        with self._lock:
            if isinstance(code, str) and self.catalog.get(org, "plan", code) is not None:
                return _validation({"code": ["value_already_exist"]})
            prepared, problem = self._prepare_plan(org, raw, None)
            if problem or prepared is None:
                return problem or error(400, "bad_request")
            problem = self._apply(org, [("plan", {**prepared, "created_at": self._now()})])
            return problem or self._plan_response(org, str(code))

    def update_plan(self, org: str, code: str, body: bytes) -> ApiResponse:
        """``PUT /api/v1/plans/{code}``: given fields replace; ``charges`` replaces the list,
        a charge with the ``id`` of an existing one updates it."""
        raw, problem = self._input(body, "plan")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        with self._lock:
            current = self.catalog.get(org, "plan", code)
            if current is None:
                return error(404, "plan_not_found")
            old = self.catalog.body(org, "plan", code) or {}
            prepared, problem = self._prepare_plan(org, {**old, **raw}, old)
            if problem or prepared is None:
                return problem or error(400, "bad_request")
            merged = {**prepared, "lago_id": current.id, "created_at": self._created_at(old)}
            new_code = merged.get("code")
            if not isinstance(new_code, str) or new_code == code:
                problem = self._apply(org, [("plan", merged)])
                return problem or self._plan_response(org, code)
            if self.catalog.get(org, "plan", new_code) is not None:
                return _validation({"code": ["value_already_exist"]})
            if any(s.plan_code == code for s in self.catalog.list(org, "subscription")):
                return _validation({"code": ["value_is_immutable"]})
            problem = self._apply(org, [("plan", merged)])
            if problem:
                return problem
            self.catalog.delete(org, "plan", code)
            return self._plan_response(org, new_code)

    def get_plan(self, org: str, code: str) -> ApiResponse:
        """``GET /api/v1/plans/{code}``."""
        return self._plan_response(org, code)

    def list_plans(self, org: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/plans?page=&per_page=``."""
        plans = self._newest_first(org, "plan", self.catalog.list(org, "plan"))
        return self._paginate("plans", plans, query, lambda p: self.plan_json(org, p))

    def delete_plan(self, org: str, code: str) -> ApiResponse:
        """``DELETE /api/v1/plans/{code}``: as Lago, its active subscriptions are terminated."""
        with self._lock:
            plan = self.catalog.get(org, "plan", code)
            if plan is None:
                return error(404, "plan_not_found")
            answer = self.plan_json(org, plan)
            for sub in self.catalog.list(org, "subscription"):
                if sub.plan_code == code and sub.terminated_at is None:
                    self._end_subscription(org, sub)
            self.catalog.delete(org, "plan", code)
            return ApiResponse(200, {"plan": answer})

    # --- customers -----------------------------------------------------------------------------
    def customer_json(self, org: str, customer: Customer) -> dict[str, Any]:
        """Lago's ``customer`` object."""
        body = self.catalog.body(org, "customer", customer.external_id) or {}
        created_at = self._created_at(body)
        updated_at = body.get("updated_at")
        return {
            **{k: v for k, v in body.items() if k not in (*_CLIENT_MANAGED, "error_details")},
            "lago_id": customer.id,
            "external_id": customer.external_id,
            "name": customer.name or None,
            "currency": customer.currency,
            "timezone": body.get("timezone"),
            "applicable_timezone": customer.timezone,
            "created_at": created_at,
            "updated_at": updated_at if isinstance(updated_at, str) else created_at,
            "taxes": [],
        }

    def _customer_response(self, org: str, external_id: str) -> ApiResponse:
        customer = self.catalog.get(org, "customer", external_id)
        if customer is None:
            return error(404, "customer_not_found")
        return ApiResponse(200, {"customer": self.customer_json(org, customer)})

    def create_customer(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/customers``: create, or update the customer with that external_id."""
        raw, problem = self._input(body, "customer")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        external_id = raw.get("external_id")
        now = self._now()
        with self._lock:
            current = (
                self.catalog.get(org, "customer", external_id)
                if isinstance(external_id, str) else None
            )
            if current is None:
                stored = {**raw, "created_at": now, "updated_at": now}
            else:
                old = self.catalog.body(org, "customer", external_id) or {}
                stored = {**old, **raw, "lago_id": current.id,
                          "created_at": self._created_at(old), "updated_at": now}
            problem = self._apply(org, [("customer", stored)])
            return problem or self._customer_response(org, str(external_id))

    def get_customer(self, org: str, external_id: str) -> ApiResponse:
        """``GET /api/v1/customers/{external_id}``."""
        return self._customer_response(org, external_id)

    def list_customers(self, org: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/customers?page=&per_page=``."""
        customers = self._newest_first(org, "customer", self.catalog.list(org, "customer"))
        return self._paginate("customers", customers, query,
                              lambda c: self.customer_json(org, c))

    # --- subscriptions -------------------------------------------------------------------------
    def subscription_json(self, org: str, sub: Subscription) -> dict[str, Any]:
        """Lago's ``subscription`` object."""
        body = self.catalog.body(org, "subscription", sub.id) or {}
        plan = self.catalog.get(org, "plan", sub.plan_code)
        customer = self.catalog.get(org, "customer", sub.external_customer_id)
        status = self._status(sub)
        period_from = period_to = None
        if plan is not None and status == "active":
            try:
                start, end = billing_period_bounds(
                    interval=plan.interval,
                    billing_time=sub.billing_time,
                    subscription_started_at=sub.started_at,
                    subscription_terminated_at=sub.terminated_at,
                    timezone=customer.timezone if customer else "UTC",
                    at=self.clock(),
                )
                period_from, period_to = iso(start), iso(end - timedelta(seconds=1))
            except (ValueError, KeyError):
                pass
        return {
            **{k: v for k, v in body.items() if k not in _CLIENT_MANAGED},
            "lago_id": sub.id,
            "external_id": sub.external_id,
            "lago_customer_id": customer.id if customer else None,
            "external_customer_id": sub.external_customer_id,
            "name": sub.name or None,
            "plan_code": sub.plan_code,
            "plan_amount_cents": plan.amount_cents if plan else None,
            "plan_amount_currency": plan.amount_currency if plan else None,
            "status": status,
            "billing_time": sub.billing_time,
            "subscription_at": iso(sub.subscription_at),
            "started_at": iso(sub.started_at),
            "terminated_at": iso(sub.terminated_at),
            "canceled_at": None,
            "ending_at": body.get("ending_at"),
            "created_at": self._created_at(body) if "created_at" in body else iso(sub.started_at),
            "previous_plan_code": None,
            "next_plan_code": None,
            "downgrade_plan_date": None,
            "trial_ended_at": None,
            "current_billing_period_started_at": period_from,
            "current_billing_period_ending_at": period_to,
        }

    def create_subscription(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/subscriptions``: the customer is created if it does not exist yet."""
        raw, problem = self._input(body, "subscription")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        try:
            parsed = parse_subscription(raw, org, now=self.clock())
        except CatalogValidationError as exc:
            return _validation(exc.details)
        with self._lock:
            if self.catalog.get(org, "plan", parsed.plan_code) is None:
                return error(404, "plan_not_found")
            live = [s for s in self.catalog.subscriptions(org, parsed.external_id)
                    if s.terminated_at is None]
            if live:
                same = (live[0].plan_code == parsed.plan_code
                        and live[0].external_customer_id == parsed.external_customer_id)
                if not same:  # plan changes (upgrade/downgrade) are not supported
                    return _validation({"external_id": ["value_already_exist"]})
                return ApiResponse(200, {"subscription": self.subscription_json(org, live[0])})
            now = self._now()
            items: list[tuple[str, Mapping[str, Any]]] = []
            if self.catalog.get(org, "customer", parsed.external_customer_id) is None:
                items.append(("customer", {"external_id": parsed.external_customer_id,
                                           "created_at": now, "updated_at": now}))
            items.append(("subscription", {**raw, "created_at": now}))
            problem = self._apply(org, items)
            if problem:
                return problem
            sub = self.catalog.subscriptions(org, parsed.external_id)[0]
            return ApiResponse(200, {"subscription": self.subscription_json(org, sub)})

    def get_subscription(self, org: str, external_id: str) -> ApiResponse:
        """``GET /api/v1/subscriptions/{external_id}``: the latest started with that id."""
        subs = self.catalog.subscriptions(org, external_id)
        if not subs:
            return error(404, "subscription_not_found")
        return ApiResponse(200, {"subscription": self.subscription_json(org, subs[0])})

    def list_subscriptions(self, org: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/subscriptions?external_customer_id=&plan_code=&status[]=``
        (active ones unless ``status[]`` says otherwise)."""
        customer = _first(query, "external_customer_id")
        plan_code = _first(query, "plan_code")
        statuses = set(_all(query, "status[]", "status")) or {"active"}
        subs = [
            s for s in self.catalog.list(org, "subscription")
            if (customer is None or s.external_customer_id == customer)
            and (plan_code is None or s.plan_code == plan_code)
            and self._status(s) in statuses
        ]
        subs.sort(key=lambda s: (s.started_at, s.external_id), reverse=True)
        return self._paginate("subscriptions", subs, query,
                              lambda s: self.subscription_json(org, s))

    def _end_subscription(self, org: str, sub: Subscription) -> Subscription:
        """Terminate now; a pending one (not started yet) is canceled, i.e. removed."""
        if sub.started_at > self.clock():
            self.catalog.delete(org, "subscription", sub.id)
            return sub
        ended = self.catalog.terminate_subscription(org, sub.external_id, at=self.clock())
        return ended or sub

    def terminate_subscription(self, org: str, external_id: str) -> ApiResponse:
        """``DELETE /api/v1/subscriptions/{external_id}``: terminate the live one now."""
        with self._lock:
            live = [s for s in self.catalog.subscriptions(org, external_id)
                    if s.terminated_at is None]
            if not live:
                return error(404, "subscription_not_found")
            pending = live[0].started_at > self.clock()
            try:
                ended = self._end_subscription(org, live[0])
            except CatalogValidationError as exc:
                return _validation(exc.details)
            answer = self.subscription_json(org, ended)
            if pending:
                answer.update(status="canceled", canceled_at=self._now())
            return ApiResponse(200, {"subscription": answer})

    # --- events --------------------------------------------------------------------------------
    def get_event(self, org: str, transaction_id: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/events/{transaction_id}``: a stored (processed) event.

        Optional ``external_subscription_id`` picks one when several subscriptions used the
        same transaction id. Events still in Kafka, duplicates and dead letters are not found.
        """
        rows = self.store.find_events(org, transaction_id)
        wanted = _first(query, "external_subscription_id")
        if wanted is not None:
            rows = [r for r in rows if r.get("external_subscription_id") == wanted]
        if not rows:
            return error(404, "event_not_found")
        return ApiResponse(200, {"event": event_json(org, rows[0])})


def event_json(org: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Lago's ``event`` object from a stored enriched row."""
    properties = row.get("properties")
    if isinstance(properties, str | bytes):
        try:  # every digit of a number property, as it was sent
            properties = exact_json.loads(properties or b"{}")
        except exact_json.JSONDecodeError:
            properties = {}
    precise = row.get("precise_total_amount_cents")
    if isinstance(precise, Decimal):
        precise = decimal_to_string(precise)
    elif precise is not None:
        precise = str(precise)
    external_subscription_id = str(row.get("external_subscription_id") or "")
    transaction_id = str(row.get("transaction_id") or "")
    ingested = row.get("ingested_at_ms")
    return {
        "lago_id": stable_id(org, "event", external_subscription_id, transaction_id),
        "transaction_id": transaction_id,
        "external_subscription_id": external_subscription_id,
        "lago_subscription_id": row.get("subscription_id") or None,
        "lago_customer_id": row.get("customer_id") or None,
        "code": row.get("code"),
        "timestamp": iso_ms(int(row.get("timestamp_ms") or 0)),
        "properties": properties if isinstance(properties, dict) else {},
        "precise_total_amount_cents": precise,
        "created_at": iso_ms(int(ingested)) if ingested is not None else None,
    }


def _keep_filter_ids(filters: Any, previous: Mapping[str, Any]) -> Any:
    """New charge filters take the ``lago_id`` of a previous filter with the same values."""
    if not isinstance(filters, list):
        return filters
    old = {
        _values_key(f.get("values")): f.get("lago_id")
        for f in previous.get("filters") or [] if isinstance(f, Mapping) and f.get("lago_id")
    }
    out = []
    for f in filters:
        if isinstance(f, Mapping) and not f.get("lago_id"):
            key = _values_key(f.get("values"))
            if key in old:
                f = {**f, "lago_id": old[key]}
        out.append(f)
    return out


def _values_key(values: Any) -> bytes:
    """A charge filter's values as comparable bytes (numbers with every digit)."""
    try:
        return exact_json.dumps(values, option=orjson.OPT_SORT_KEYS)
    except (TypeError, ValueError):
        return b""
