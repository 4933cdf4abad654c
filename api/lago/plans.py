"""``/api/v1/plans``: Lago's plans and their charges.

Charge and charge filter ids are pinned in the stored body, so a charge keeps its usage when
charges are reordered, added or removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from api.envelope import ApiResponse, error, validation
from api.lago.common import CLIENT_MANAGED, LagoContext, Query, lago_input, paginate
from schemas import exact_json
from schemas.catalog import BillableMetric, CatalogValidationError, Charge, Plan, parse_plan


def _charge_json(
    charge: Charge, raw: Mapping[str, Any], metric: BillableMetric | None, created_at: str
) -> dict[str, Any]:
    """Lago's ``charge`` object (``raw``: its stored body)."""
    return {
        **{k: v for k, v in raw.items() if k not in CLIENT_MANAGED},
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
    }


class Plans:
    """Create, read, update, list and delete plans of one organization."""

    def __init__(self, ctx: LagoContext):
        self.ctx = ctx
        self.catalog = ctx.catalog

    def json(self, org: str, plan: Plan) -> dict[str, Any]:
        """Lago's ``plan`` object with its charges."""
        body = self.catalog.body(org, "plan", plan.code) or {}
        created_at = self.ctx.created_at(body)
        metrics = {m.code: m for m in self.catalog.list(org, "billable_metric")}
        raw_charges = [c for c in body.get("charges") or [] if isinstance(c, Mapping)]
        charge_bodies = {str(c.get("lago_id") or c.get("id")): c for c in raw_charges}
        return {
            **{k: v for k, v in body.items() if k not in CLIENT_MANAGED},
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
            "active_subscriptions_count": len(self.ctx.active_subscriptions(org, {plan.code})),
            "draft_invoices_count": 0,
            "charges": [
                _charge_json(charge, charge_bodies.get(charge.id, {}),
                             metrics.get(charge.billable_metric_code), created_at)
                for charge in plan.charges
            ],
            # invoicing features Meterline does not compute: accepted, not returned
            "fixed_charges": [],
            "minimum_commitment": None,
            "usage_thresholds": [],
            "taxes": [],
        }

    def _response(self, org: str, code: str) -> ApiResponse:
        plan = self.catalog.get(org, "plan", code)
        if plan is None:
            return error(404, "plan_not_found")
        return ApiResponse(200, {"plan": self.json(org, plan)})

    def _prepare(
        self, org: str, raw: dict[str, Any], old: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any] | None, ApiResponse | None]:
        """Validate a whole plan body (``raw``; for an update, the old body merged with the
        new fields): resolve ``billable_metric_id``s, merge charges given by id, and pin the
        charge and filter ids.
        """
        charges = raw.get("charges")
        if not isinstance(charges, list):
            return raw, None  # absent (kept) or a wrong type (parse_plan reports it)
        prepared, problem = self._resolve_charges(org, charges, old)
        if problem or prepared is None:
            return None, problem
        merged = {**raw, "charges": prepared}
        try:
            parsed = parse_plan(merged, org)
        except CatalogValidationError as exc:
            return None, validation(exc.details)
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

    def _resolve_charges(
        self, org: str, charges: list[Any], old: Mapping[str, Any] | None
    ) -> tuple[list[Any] | None, ApiResponse | None]:
        """The charges with their metric codes resolved (404 for an unknown metric) and the
        stored fields of a charge given by ``id`` merged in."""
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
        return prepared, None

    def create(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/plans``."""
        raw, problem = lago_input(body, "plan")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        code = raw.get("code")
        with self.ctx.lock:
            if isinstance(code, str) and self.catalog.get(org, "plan", code) is not None:
                return validation({"code": ["value_already_exist"]})
            prepared, problem = self._prepare(org, raw, None)
            if problem or prepared is None:
                return problem or error(400, "bad_request")
            problem = self.ctx.apply(org, [("plan", {**prepared, "created_at": self.ctx.now()})])
            return problem or self._response(org, str(code))

    def update(self, org: str, code: str, body: bytes) -> ApiResponse:
        """``PUT /api/v1/plans/{code}``: given fields replace; ``charges`` replaces the list,
        a charge with the ``id`` of an existing one updates it."""
        raw, problem = lago_input(body, "plan")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        with self.ctx.lock:
            current = self.catalog.get(org, "plan", code)
            if current is None:
                return error(404, "plan_not_found")
            old = self.catalog.body(org, "plan", code) or {}
            prepared, problem = self._prepare(org, {**old, **raw}, old)
            if problem or prepared is None:
                return problem or error(400, "bad_request")
            merged = {**prepared, "lago_id": current.id, "created_at": self.ctx.created_at(old)}
            new_code = merged.get("code")
            if not isinstance(new_code, str) or new_code == code:
                problem = self.ctx.apply(org, [("plan", merged)])
                return problem or self._response(org, code)
            if self.catalog.get(org, "plan", new_code) is not None:
                return validation({"code": ["value_already_exist"]})
            if any(s.plan_code == code for s in self.catalog.list(org, "subscription")):
                return validation({"code": ["value_is_immutable"]})
            problem = self.ctx.apply(org, [("plan", merged)])
            if problem:
                return problem
            self.catalog.delete(org, "plan", code)
            return self._response(org, new_code)

    def get(self, org: str, code: str) -> ApiResponse:
        """``GET /api/v1/plans/{code}``."""
        return self._response(org, code)

    def list(self, org: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/plans?page=&per_page=``."""
        plans = self.ctx.newest_first(org, "plan", self.catalog.list(org, "plan"))
        return paginate("plans", plans, query, lambda p: self.json(org, p))

    def delete(self, org: str, code: str) -> ApiResponse:
        """``DELETE /api/v1/plans/{code}``: as Lago, its active subscriptions are terminated."""
        with self.ctx.lock:
            plan = self.catalog.get(org, "plan", code)
            if plan is None:
                return error(404, "plan_not_found")
            answer = self.json(org, plan)
            for sub in self.catalog.list(org, "subscription"):
                if sub.plan_code == code and sub.terminated_at is None:
                    self.ctx.end_subscription(org, sub)
            self.catalog.delete(org, "plan", code)
            return ApiResponse(200, {"plan": answer})


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
