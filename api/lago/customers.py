"""``/api/v1/customers``: Lago's customers."""

from __future__ import annotations

from typing import Any

from api.envelope import ApiResponse, error
from api.lago.common import CLIENT_MANAGED, LagoContext, Query, lago_input, paginate
from schemas.catalog import Customer


class Customers:
    """Create or update, read and list customers of one organization."""

    def __init__(self, ctx: LagoContext):
        self.ctx = ctx
        self.catalog = ctx.catalog

    def json(self, org: str, customer: Customer) -> dict[str, Any]:
        """Lago's ``customer`` object."""
        body = self.catalog.body(org, "customer", customer.external_id) or {}
        created_at = self.ctx.created_at(body)
        updated_at = body.get("updated_at")
        return {
            **{k: v for k, v in body.items() if k not in (*CLIENT_MANAGED, "error_details")},
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

    def _response(self, org: str, external_id: str) -> ApiResponse:
        customer = self.catalog.get(org, "customer", external_id)
        if customer is None:
            return error(404, "customer_not_found")
        return ApiResponse(200, {"customer": self.json(org, customer)})

    def create(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/customers``: create, or update the customer with that external_id."""
        raw, problem = lago_input(body, "customer")
        if problem or raw is None:
            return problem or error(400, "bad_request")
        external_id = raw.get("external_id")
        now = self.ctx.now()
        with self.ctx.lock:
            current = (
                self.catalog.get(org, "customer", external_id)
                if isinstance(external_id, str) else None
            )
            if current is None:
                stored = {**raw, "created_at": now, "updated_at": now}
            else:
                old = self.catalog.body(org, "customer", str(external_id)) or {}
                stored = {**old, **raw, "lago_id": current.id,
                          "created_at": self.ctx.created_at(old), "updated_at": now}
            problem = self.ctx.apply(org, [("customer", stored)])
            return problem or self._response(org, str(external_id))

    def get(self, org: str, external_id: str) -> ApiResponse:
        """``GET /api/v1/customers/{external_id}``."""
        return self._response(org, external_id)

    def list(self, org: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/customers?page=&per_page=``."""
        customers = self.ctx.newest_first(org, "customer", self.catalog.list(org, "customer"))
        return paginate("customers", customers, query, lambda c: self.json(org, c))
