"""``/api/v1/subscriptions``: Lago's subscriptions (no plan changes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from api.envelope import ApiResponse, error, validation
from api.lago.common import (
    CLIENT_MANAGED,
    LagoContext,
    Query,
    every,
    first,
    iso,
    lago_input,
    paginate,
)
from billing import subscription_period_bounds
from schemas.catalog import (
    CatalogValidationError,
    Customer,
    Plan,
    Subscription,
    parse_subscription,
)


class Subscriptions:
    """Create, read, list and terminate subscriptions of one organization."""

    def __init__(self, ctx: LagoContext):
        self.ctx = ctx
        self.catalog = ctx.catalog

    def _current_period(
        self, sub: Subscription, plan: Plan | None, customer: Customer | None
    ) -> tuple[str | None, str | None]:
        """First and last second of the current billing period of an active subscription."""
        if plan is None:
            return None, None
        try:
            start, end = subscription_period_bounds(
                sub, plan, customer.timezone if customer else "UTC", self.ctx.clock())
        except (ValueError, KeyError):
            return None, None
        return iso(start), iso(end - timedelta(seconds=1))

    def json(self, org: str, sub: Subscription) -> dict[str, Any]:
        """Lago's ``subscription`` object."""
        body = self.catalog.body(org, "subscription", sub.id) or {}
        plan = self.catalog.get(org, "plan", sub.plan_code)
        customer = self.catalog.get(org, "customer", sub.external_customer_id)
        status = self.ctx.status(sub)
        period_from, period_to = (
            self._current_period(sub, plan, customer) if status == "active" else (None, None)
        )
        return {
            **{k: v for k, v in body.items() if k not in CLIENT_MANAGED},
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
            "created_at": (self.ctx.created_at(body) if "created_at" in body
                           else iso(sub.started_at)),
            "previous_plan_code": None,
            "next_plan_code": None,
            "downgrade_plan_date": None,
            "trial_ended_at": None,
            "current_billing_period_started_at": period_from,
            "current_billing_period_ending_at": period_to,
        }

    def create(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/subscriptions``: the customer is created if it does not exist yet."""
        raw, problem = lago_input(body, "subscription")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        try:
            parsed = parse_subscription(raw, org, now=self.ctx.clock())
        except CatalogValidationError as exc:
            return validation(exc.details)
        with self.ctx.lock:
            if self.catalog.get(org, "plan", parsed.plan_code) is None:
                return error(404, "plan_not_found")
            live = [s for s in self.catalog.subscriptions(org, parsed.external_id)
                    if s.terminated_at is None]
            if live:
                same = (live[0].plan_code == parsed.plan_code
                        and live[0].external_customer_id == parsed.external_customer_id)
                if not same:  # plan changes (upgrade/downgrade) are not supported
                    return validation({"external_id": ["value_already_exist"]})
                return ApiResponse(200, {"subscription": self.json(org, live[0])})
            now = self.ctx.now()
            items: list[tuple[str, Mapping[str, Any]]] = []
            if self.catalog.get(org, "customer", parsed.external_customer_id) is None:
                items.append(("customer", {"external_id": parsed.external_customer_id,
                                           "created_at": now, "updated_at": now}))
            items.append(("subscription", {**raw, "created_at": now}))
            problem = self.ctx.apply(org, items)
            if problem:
                return problem
            sub = self.catalog.subscriptions(org, parsed.external_id)[0]
            return ApiResponse(200, {"subscription": self.json(org, sub)})

    def get(self, org: str, external_id: str) -> ApiResponse:
        """``GET /api/v1/subscriptions/{external_id}``: the latest started with that id."""
        subs = self.catalog.subscriptions(org, external_id)
        if not subs:
            return error(404, "subscription_not_found")
        return ApiResponse(200, {"subscription": self.json(org, subs[0])})

    def list(self, org: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/subscriptions?external_customer_id=&plan_code=&status[]=``
        (active ones unless ``status[]`` says otherwise)."""
        customer = first(query, "external_customer_id")
        plan_code = first(query, "plan_code")
        statuses = set(every(query, "status[]", "status")) or {"active"}
        subs = [
            s for s in self.catalog.list(org, "subscription")
            if (customer is None or s.external_customer_id == customer)
            and (plan_code is None or s.plan_code == plan_code)
            and self.ctx.status(s) in statuses
        ]
        subs.sort(key=lambda s: (s.started_at, s.external_id), reverse=True)
        return paginate("subscriptions", subs, query, lambda s: self.json(org, s))

    def terminate(self, org: str, external_id: str) -> ApiResponse:
        """``DELETE /api/v1/subscriptions/{external_id}``: terminate the live one now."""
        with self.ctx.lock:
            live = [s for s in self.catalog.subscriptions(org, external_id)
                    if s.terminated_at is None]
            if not live:
                return error(404, "subscription_not_found")
            pending = live[0].started_at > self.ctx.clock()
            try:
                ended = self.ctx.end_subscription(org, live[0])
            except CatalogValidationError as exc:
                return validation(exc.details)
            answer = self.json(org, ended)
            if pending:
                answer.update(status="canceled", canceled_at=self.ctx.now())
            return ApiResponse(200, {"subscription": answer})
