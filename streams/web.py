"""Binds :class:`meterline.api.Api` to Faust's web server (aiohttp underneath)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import faust
from faust.web import Request, Response, View

from meterline.api import Api, ApiResponse, error
from meterline.dead_letter_api import DeadLetterApi
from meterline.lago_api import LagoControlApi
from sinks.store import StoreError
from streams.metrics import Metrics
from streams.web_dead_letters import register_dead_letter_routes
from streams.web_lago import register_lago_routes

log = logging.getLogger("meterline.web")


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes."""
    length = request.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):  # type: ignore[attr-defined]
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def register_routes(
    app: faust.App, api: Api, *, max_body_bytes: int, dead_letters: DeadLetterApi | None = None,
    control: LagoControlApi | None = None, metrics: Metrics | None = None,
) -> None:
    """Add every Meterline route to the Faust app's web server.

    Every API route goes through ``guarded``, which counts requests and their latency by route
    *pattern* (the view's ``view_path``, e.g. ``/api/v1/plans/{code}``), never by concrete path.
    """
    metrics = metrics or Metrics()

    def respond(view: View, result: ApiResponse) -> Response:
        return view.json(result.body, status=result.status)

    async def guarded(
        view: View,
        request: Request,
        handler: Callable[[str, bytes | None], Awaitable[ApiResponse]],
        *,
        needs_body: bool,
        route: str | None = None,
    ) -> Response:
        """Authenticate, read the body, run ``handler``; count the request by route pattern."""
        pattern = route or getattr(view, "view_path", None) or "other"
        started = time.perf_counter()
        status = "500"
        try:
            response = await _answer(view, request, handler, needs_body)
            status = str(response.status)
            return response
        finally:
            metrics.http_requests.labels(pattern, request.method, status).inc()
            metrics.http_seconds.labels(pattern, request.method).observe(
                time.perf_counter() - started
            )

    async def _answer(
        view: View,
        request: Request,
        handler: Callable[[str, bytes | None], Awaitable[ApiResponse]],
        needs_body: bool,
    ) -> Response:
        org = api.authenticate(request.headers.get("Authorization"))
        if org is None:
            return respond(view, error(401, "unauthorized"))
        body = None
        if needs_body:
            body = await read_body(request, max_body_bytes)
            if body is None:
                return respond(view, error(413, "payload_too_large"))
        try:
            return respond(view, await handler(org, body))
        except Exception as exc:  # never a bare 500 page: log it and answer with the envelope
            if isinstance(exc, StoreError):
                metrics.store_errors.labels("api").inc()
            log.exception("request failed: %s %s", request.method, request.path)
            return respond(view, error(503, "temporarily_unavailable"))

    @app.page("/api/v1/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            return await guarded(self, request, lambda org, b: api.post_event(org, b or b""),
                                 needs_body=True)

    @app.page("/api/v1/events/batch")
    class EventsBatch(View):
        async def post(self, request: Request) -> Response:
            return await guarded(
                self, request, lambda org, b: api.post_events_batch(org, b or b""),
                needs_body=True,
            )

    @app.page("/api/v1/customers/{external_customer_id}/current_usage")
    class CurrentUsage(View):
        async def get(self, request: Request, external_customer_id: str) -> Response:
            query = dict(request.query)  # type: ignore[attr-defined]

            async def handler(org: str, _body: bytes | None) -> ApiResponse:
                started = time.perf_counter()
                try:
                    return api.current_usage(org, external_customer_id, query)
                finally:
                    metrics.usage_read_seconds.observe(time.perf_counter() - started)

            return await guarded(self, request, handler, needs_body=False)

    if control is not None:
        register_lago_routes(app, control, guarded)

    @app.page("/api/v1/meterline/catalog")
    class CatalogDocument(View):
        async def post(self, request: Request) -> Response:
            async def handler(org: str, body: bytes | None) -> ApiResponse:
                return api.apply_catalog(org, body or b"")

            return await guarded(self, request, handler, needs_body=True)

    @app.page("/api/v1/meterline/reconcile")
    class Reconcile(View):
        async def get(self, request: Request) -> Response:
            return await guarded(self, request, lambda org, _b: api.reconcile(), needs_body=False)

    @app.page("/api/v1/meterline/status")
    class Status(View):
        async def get(self, request: Request) -> Response:
            return await guarded(self, request, lambda org, _b: api.status(), needs_body=False)

    if dead_letters is not None:
        register_dead_letter_routes(app, dead_letters, guarded)

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

