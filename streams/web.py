"""Binds :class:`meterline.api.Api` to Faust's web server (aiohttp underneath)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

import faust
from aiohttp import web as aiohttp_web
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from faust.web import Request, Response, View

from meterline.api import Api, ApiResponse, error
from meterline.dead_letter_api import DeadLetterApi
from meterline.lago_api import LagoControlApi
from schemas import exact_json
from services.publishing import PublishFailed
from sinks.store import StoreDataError, StoreError
from streams.metrics import Metrics
from streams.web_dead_letters import register_dead_letter_routes
from streams.web_lago import any_segment, register_lago_routes, route_label

log = logging.getLogger("meterline.web")

RETRY_AFTER_SECONDS = 1


def retryable(exc: BaseException) -> bool:
    """True for a failure a retry can fix: the store or Kafka down, slow or not ready yet."""
    if isinstance(exc, StoreDataError):  # the engine refused the data: it would again
        return False
    if isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError):
        return False
    return isinstance(exc, StoreError | PublishFailed | KafkaError | TimeoutError)


def failure_response(exc: BaseException) -> ApiResponse:
    """The answer to a request whose handler raised ``exc``.

    503 with ``Retry-After`` when a retry can succeed. Everything a caller can fix is
    rejected with a 4xx before anything is written, so any other exception is a bug: 500.
    """
    if retryable(exc):
        answer = error(503, "temporarily_unavailable")
        return dataclasses.replace(answer, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return error(500, "internal_error")


def not_ready() -> ApiResponse:
    """The answer to a request that came before the worker was ready: retry shortly."""
    answer = error(503, "not_ready")
    return dataclasses.replace(answer, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@aiohttp_web.middleware
async def lago_envelope(
    request: aiohttp_web.Request, handler: Callable
) -> aiohttp_web.StreamResponse:
    """The web server's own 4xx (no route for a path, no such method on it) in Lago's envelope,
    as every answer of the API."""
    try:
        return await handler(request)
    except aiohttp_web.HTTPException as exc:
        if not 400 <= exc.status < 500:
            raise
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        answer = error(exc.status, codes.get(exc.status, "bad_request"))
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return aiohttp_web.json_response(answer.body, status=exc.status, headers=allow)


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
    readiness: Callable[[], dict] | None = None,
) -> None:
    """Add every Meterline route to the Faust app's web server.

    Every API route goes through ``guarded``, which counts requests and their latency by route
    *pattern* (the view's ``view_path``, e.g. ``/api/v1/plans/{code}``), never by concrete path.
    Until ``readiness`` first says ready, every API request is answered 503 with
    ``Retry-After``; ``/health`` (alive) and ``/ready`` answer from the start.
    """
    metrics = metrics or Metrics()
    server = getattr(app.web, "web_app", None)  # aiohttp's Application (Faust's web driver)
    if server is not None:
        server.middlewares.append(lago_envelope)
    opened = readiness is None  # the API opens once, the first time the worker is ready

    def is_open() -> bool:
        nonlocal opened
        if not opened and readiness is not None and readiness()["ready"]:
            opened = True
        return opened

    def respond(view: View, result: ApiResponse) -> Response:
        headers = dict(result.headers) if result.headers else None
        # bodies echo what requests held, read exactly (integers of any size, Decimals)
        return view.json(exact_json.jsonable(result.body), status=result.status, headers=headers)

    async def guarded(
        view: View,
        request: Request,
        handler: Callable[[str, bytes | None], Awaitable[ApiResponse]],
        *,
        needs_body: bool,
        route: str | None = None,
    ) -> Response:
        """Authenticate, read the body, run ``handler``; count the request by route pattern."""
        pattern = route_label(route or getattr(view, "view_path", None) or "other")
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
        if not is_open():
            return respond(view, not_ready())
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
            answer = failure_response(exc)
            if answer.status == 503:
                log.warning("request failed, retryable: %s %s: %r",
                            request.method, request.path, exc)
            else:
                log.exception("request failed (a bug): %s %s", request.method, request.path)
            return respond(view, answer)

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

    @app.page(any_segment("/api/v1/customers/{external_customer_id}/current_usage"))
    class CurrentUsage(View):
        async def get(self, request: Request, external_customer_id: str) -> Response:
            query = dict(request.query)  # type: ignore[attr-defined]

            async def handler(org: str, _body: bytes | None) -> ApiResponse:
                started = time.perf_counter()
                try:  # store reads: off the event loop
                    return await asyncio.to_thread(
                        api.current_usage, org, external_customer_id, query
                    )
                finally:
                    metrics.usage_read_seconds.observe(time.perf_counter() - started)

            return await guarded(self, request, handler, needs_body=False)

    if control is not None:
        register_lago_routes(app, control, guarded)

    @app.page("/api/v1/meterline/catalog")
    class CatalogDocument(View):
        async def post(self, request: Request) -> Response:
            async def handler(org: str, body: bytes | None) -> ApiResponse:
                return await asyncio.to_thread(api.apply_catalog, org, body or b"")

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
        """Liveness: the process answers."""

        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        """Readiness: 200 when the worker takes events and makes progress, else 503."""

        async def get(self, request: Request) -> Response:
            state = readiness() if readiness is not None else {"ready": True, "checks": {}}
            status = 200 if state["ready"] else 503
            headers = None if state["ready"] else {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return self.json({"status": "ready" if state["ready"] else "not_ready", **state},
                             status=status, headers=headers)

