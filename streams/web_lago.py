"""Routes of Lago's control-plane API (:class:`meterline.lago_api.LagoControlApi`).

Catalog calls write to the store, so they run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import faust
from faust.web import Request, Response, View

from meterline.api import ApiResponse
from meterline.lago_api import LagoControlApi

_PARAM = re.compile(r"\{(\w+)\}")
_PARAM_PATTERN = re.compile(r"\{(\w+):[^}]*\}")


def any_segment(path: str) -> str:
    """``path`` with each ``{name}`` matching any one segment (``{name:[^/]+}``): aiohttp's
    default refuses ``{`` and ``}`` in a segment, so a code holding one got its plain 404."""
    return _PARAM.sub(r"{\1:[^/]+}", path)


def route_label(path: str) -> str:
    """The route pattern as metrics show it: ``{name}``, whatever it matches."""
    return _PARAM_PATTERN.sub(r"{\1}", path)


def _query(request: Request) -> list[tuple[str, str]]:
    """Every query pair, repeated keys (``status[]=…&status[]=…``) included."""
    return list(request.query.items())  # type: ignore[attr-defined]


def _call(fn: Callable[..., ApiResponse], *args: Any) -> Callable[[str, bytes | None], Any]:
    """A ``guarded`` handler running ``fn(org, *args)`` in a thread."""

    async def handler(org: str, _body: bytes | None) -> ApiResponse:
        return await asyncio.to_thread(fn, org, *args)

    return handler


def _call_with_body(fn: Callable[..., ApiResponse], *args: Any) -> Callable[..., Any]:
    """A ``guarded`` handler running ``fn(org, *args, body)`` in a thread."""

    async def handler(org: str, body: bytes | None) -> ApiResponse:
        return await asyncio.to_thread(fn, org, *args, body or b"")

    return handler


def register_lago_routes(app: faust.App, control: LagoControlApi, guarded: Any) -> None:
    """Billable metrics, plans, customers, subscriptions and the event lookup."""

    def page(path: str, name: str) -> Callable[[type[View]], type[View]]:
        def register(view: type[View]) -> type[View]:
            view.__name__ = view.__qualname__ = name
            return app.page(any_segment(path))(view)

        return register

    # --- billable metrics ----------------------------------------------------------------------
    @page("/api/v1/billable_metrics", "LagoBillableMetrics")
    class BillableMetrics(View):
        async def get(self, request: Request) -> Response:
            handler = _call(control.list_billable_metrics, _query(request))
            return await guarded(self, request, handler, needs_body=False)

        async def post(self, request: Request) -> Response:
            handler = _call_with_body(control.create_billable_metric)
            return await guarded(self, request, handler, needs_body=True)

    @page("/api/v1/billable_metrics/{code}", "LagoBillableMetric")
    class BillableMetric(View):
        async def get(self, request: Request, code: str) -> Response:
            handler = _call(control.get_billable_metric, code)
            return await guarded(self, request, handler, needs_body=False)

        async def put(self, request: Request, code: str) -> Response:
            handler = _call_with_body(control.update_billable_metric, code)
            return await guarded(self, request, handler, needs_body=True)

        async def delete(self, request: Request, code: str) -> Response:
            handler = _call(control.delete_billable_metric, code)
            return await guarded(self, request, handler, needs_body=False)

    # --- plans ---------------------------------------------------------------------------------
    @page("/api/v1/plans", "LagoPlans")
    class Plans(View):
        async def get(self, request: Request) -> Response:
            handler = _call(control.list_plans, _query(request))
            return await guarded(self, request, handler, needs_body=False)

        async def post(self, request: Request) -> Response:
            handler = _call_with_body(control.create_plan)
            return await guarded(self, request, handler, needs_body=True)

    @page("/api/v1/plans/{code}", "LagoPlan")
    class PlanByCode(View):
        async def get(self, request: Request, code: str) -> Response:
            handler = _call(control.get_plan, code)
            return await guarded(self, request, handler, needs_body=False)

        async def put(self, request: Request, code: str) -> Response:
            handler = _call_with_body(control.update_plan, code)
            return await guarded(self, request, handler, needs_body=True)

        async def delete(self, request: Request, code: str) -> Response:
            handler = _call(control.delete_plan, code)
            return await guarded(self, request, handler, needs_body=False)

    # --- customers -----------------------------------------------------------------------------
    @page("/api/v1/customers", "LagoCustomers")
    class Customers(View):
        async def get(self, request: Request) -> Response:
            handler = _call(control.list_customers, _query(request))
            return await guarded(self, request, handler, needs_body=False)

        async def post(self, request: Request) -> Response:
            handler = _call_with_body(control.create_customer)
            return await guarded(self, request, handler, needs_body=True)

    @page("/api/v1/customers/{external_id}", "LagoCustomer")
    class CustomerById(View):
        async def get(self, request: Request, external_id: str) -> Response:
            handler = _call(control.get_customer, external_id)
            return await guarded(self, request, handler, needs_body=False)

    # --- subscriptions -------------------------------------------------------------------------
    @page("/api/v1/subscriptions", "LagoSubscriptions")
    class Subscriptions(View):
        async def get(self, request: Request) -> Response:
            handler = _call(control.list_subscriptions, _query(request))
            return await guarded(self, request, handler, needs_body=False)

        async def post(self, request: Request) -> Response:
            handler = _call_with_body(control.create_subscription)
            return await guarded(self, request, handler, needs_body=True)

    @page("/api/v1/subscriptions/{external_id}", "LagoSubscription")
    class SubscriptionById(View):
        async def get(self, request: Request, external_id: str) -> Response:
            handler = _call(control.get_subscription, external_id)
            return await guarded(self, request, handler, needs_body=False)

        async def delete(self, request: Request, external_id: str) -> Response:
            handler = _call(control.terminate_subscription, external_id)
            return await guarded(self, request, handler, needs_body=False)

    # --- events --------------------------------------------------------------------------------
    @page("/api/v1/events/{transaction_id}", "LagoEvent")
    class EventById(View):
        async def get(self, request: Request, transaction_id: str) -> Response:
            handler = _call(control.get_event, transaction_id, _query(request))
            return await guarded(self, request, handler, needs_body=False)
