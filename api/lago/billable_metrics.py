"""``/api/v1/billable_metrics``: Lago's billable metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.envelope import ApiResponse, error, validation
from api.lago.common import CLIENT_MANAGED, LagoContext, Query, lago_input, paginate
from schemas.catalog import BillableMetric


class BillableMetrics:
    """Create, read, update, list and delete billable metrics of one organization."""

    def __init__(self, ctx: LagoContext):
        self.ctx = ctx
        self.catalog = ctx.catalog

    def json(self, org: str, metric: BillableMetric) -> dict[str, Any]:
        """Lago's ``billable_metric`` object."""
        body = self.catalog.body(org, "billable_metric", metric.code) or {}
        plans = self.ctx.plans_using(org, metric.code)
        return {
            **{k: v for k, v in body.items() if k not in CLIENT_MANAGED},
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
            "created_at": self.ctx.created_at(body),
            "plans_count": len(plans),
            "active_subscriptions_count": len(
                self.ctx.active_subscriptions(org, {p.code for p in plans})
            ),
            "draft_invoices_count": 0,
        }

    def _response(self, org: str, code: str) -> ApiResponse:
        metric = self.catalog.get(org, "billable_metric", code)
        if metric is None:
            return error(404, "billable_metric_not_found")
        return ApiResponse(200, {"billable_metric": self.json(org, metric)})

    def create(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/billable_metrics``."""
        raw, problem = lago_input(body, "billable_metric")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        code = raw.get("code")
        with self.ctx.lock:
            if isinstance(code, str) and self.catalog.get(org, "billable_metric", code):
                return validation({"code": ["value_already_exist"]})
            problem = self.ctx.apply(
                org, [("billable_metric", {**raw, "created_at": self.ctx.now()})]
            )
            if problem:
                return problem
            return self._response(org, str(code))

    def update(self, org: str, code: str, body: bytes) -> ApiResponse:
        """``PUT /api/v1/billable_metrics/{code}``: fields given replace the stored ones."""
        raw, problem = lago_input(body, "billable_metric")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        with self.ctx.lock:
            current = self.catalog.get(org, "billable_metric", code)
            if current is None:
                return error(404, "billable_metric_not_found")
            old = self.catalog.body(org, "billable_metric", code) or {}
            merged = {**old, **raw, "lago_id": current.id,
                      "created_at": self.ctx.created_at(old)}
            new_code = merged.get("code")
            if not isinstance(new_code, str) or new_code == code:
                problem = self.ctx.apply(org, [("billable_metric", merged)])
                return problem or self._response(org, code)
            # a new code: only for a free code and a metric no plan charges
            if self.catalog.get(org, "billable_metric", new_code) is not None:
                return validation({"code": ["value_already_exist"]})
            if self.ctx.plans_using(org, code):
                return validation({"code": ["value_is_immutable"]})
            problem = self.ctx.apply(org, [("billable_metric", merged)])
            if problem:
                return problem
            self.catalog.delete(org, "billable_metric", code)
            return self._response(org, new_code)

    def get(self, org: str, code: str) -> ApiResponse:
        """``GET /api/v1/billable_metrics/{code}``."""
        return self._response(org, code)

    def list(self, org: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/billable_metrics?page=&per_page=``."""
        metrics = self.ctx.newest_first(org, "billable_metric",
                                        self.catalog.list(org, "billable_metric"))
        return paginate("billable_metrics", metrics, query, lambda m: self.json(org, m))

    def delete(self, org: str, code: str) -> ApiResponse:
        """``DELETE /api/v1/billable_metrics/{code}``: as Lago, plans lose their charges on it."""
        with self.ctx.lock:
            metric = self.catalog.get(org, "billable_metric", code)
            if metric is None:
                return error(404, "billable_metric_not_found")
            answer = self.json(org, metric)
            plans: list[tuple[str, Mapping[str, Any]]] = []
            for plan in self.ctx.plans_using(org, code):
                plan_body = dict(self.catalog.body(org, "plan", plan.code) or {})
                plan_body["charges"] = [
                    c for c in plan_body.get("charges") or []
                    if not (isinstance(c, Mapping) and c.get("billable_metric_code") == code)
                ]
                plans.append(("plan", plan_body))
            if plans:
                problem = self.ctx.apply(org, plans)
                if problem:
                    return problem
            self.catalog.delete(org, "billable_metric", code)
            return ApiResponse(200, {"billable_metric": answer})
