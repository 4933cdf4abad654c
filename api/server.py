"""Binds the route table (:mod:`api.routes`) to Faust's web server (aiohttp underneath).

Every route goes through :class:`Guard`: until ``readiness`` first says ready it answers 503
``not_ready`` with ``Retry-After``; then it authenticates (401), checks the key's role against
the route's (403 ``forbidden``), reads the body up to the limit (413), runs the handler and
maps what it raises (:func:`api.errors.failure_response`). Requests are counted, and timed,
by route *pattern* (``/api/v1/plans/{code}``), never by concrete path.
The web server's own 404 and 405 come in Lago's envelope too. ``/health`` (alive), ``/ready``
and ``/metrics`` answer from the start, without a key.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import faust
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.envelope import ApiResponse, error
from api.errors import RETRY_AFTER_SECONDS, failure_response, not_ready
from api.routes import Call, Route
from schemas import exact_json
from services.api_keys import Principal
from sinks.store import StoreError

log = logging.getLogger("meterline.web")

_PARAM = re.compile(r"\{(\w+)\}")


class RouteMetrics(Protocol):
    """The series the web layer records, on ``registry`` (which ``/metrics`` serves);
    ``streams.metrics.Metrics`` has them all."""

    registry: Any
    http_requests: Any  # Counter: route, method, status
    http_seconds: Any  # Histogram: route, method
    store_errors: Any  # Counter: operation ("api")


def any_segment(path: str) -> str:
    """``path`` with each ``{name}`` matching any one segment (``{name:[^/]+}``): aiohttp's
    default refuses ``{`` and ``}`` in a segment, so a code holding one got its plain 404."""
    return _PARAM.sub(r"{\1:[^/]+}", path)


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


def authorize(principal: Principal | None, route: Route) -> ApiResponse | None:
    """None when ``principal`` may call ``route``; else 401 (no valid key) or 403."""
    if principal is None:
        return error(401, "unauthorized")
    if principal.role not in route.roles:
        return error(403, "forbidden")
    return None


def respond(view: View, result: ApiResponse) -> Response:
    """``result`` as the web server's response."""
    headers = dict(result.headers) if result.headers else None
    # bodies echo what requests held, read exactly (integers of any size, Decimals)
    return view.json(exact_json.jsonable(result.body), status=result.status, headers=headers)


class ReadinessGate:
    """Open once, the first time ``readiness`` says ready (always open without one)."""

    def __init__(self, readiness: Callable[[], dict] | None):
        self.readiness = readiness
        self.opened = readiness is None

    def is_open(self) -> bool:
        if not self.opened and self.readiness is not None and self.readiness()["ready"]:
            self.opened = True
        return self.opened


class Guard:
    """Runs one route for one request: gate, key, body, handler, failures; counts it."""

    def __init__(self, *, authenticate: Callable[[str | None], Principal | None],
                 max_body_bytes: int, metrics: RouteMetrics, gate: ReadinessGate):
        self.authenticate = authenticate
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.gate = gate

    async def __call__(self, view: View, request: Request, route: Route,
                       params: dict[str, str]) -> Response:
        started = time.perf_counter()
        status = "500"
        try:
            response = await self._answer(view, request, route, params)
            status = str(response.status)
            return response
        finally:
            self.metrics.http_requests.labels(route.path, request.method, status).inc()
            self.metrics.http_seconds.labels(route.path, request.method).observe(
                time.perf_counter() - started
            )

    async def _answer(self, view: View, request: Request, route: Route,
                      params: dict[str, str]) -> Response:
        if not self.gate.is_open():
            return respond(view, not_ready())
        principal = self.authenticate(request.headers.get("Authorization"))
        refused = authorize(principal, route)
        if refused is not None:
            return respond(view, refused)
        assert principal is not None
        body = b""
        if route.needs_body:
            read = await read_body(request, self.max_body_bytes)
            if read is None:
                return respond(view, error(413, "payload_too_large"))
            body = read
        query = list(request.query.items())  # type: ignore[attr-defined]
        try:
            call = Call(principal.organization_id, params, query, body, principal)
            return respond(view, await route.handler(call))
        except Exception as exc:  # never a bare 500 page: log it and answer with the envelope
            return respond(view, self._failed(request, exc))

    def _failed(self, request: Request, exc: Exception) -> ApiResponse:
        if isinstance(exc, StoreError):
            self.metrics.store_errors.labels("api").inc()
        answer = failure_response(exc)
        if answer.status == 503:
            log.warning("request failed, retryable: %s %s: %r",
                        request.method, request.path, exc)  # type: ignore[attr-defined]
        else:
            log.exception("request failed (a bug): %s %s",
                          request.method, request.path)  # type: ignore[attr-defined]
        return answer


def _view(path: str, routes: Sequence[Route], guard: Guard) -> type[View]:
    """A view for one path pattern, one method per route on it."""
    def method(route: Route) -> Callable[..., Any]:
        async def handle(self: View, request: Request, **params: str) -> Response:
            return await guard(self, request, route, params)

        return handle

    name = "Route_" + re.sub(r"\W+", "_", path).strip("_")
    return type(name, (View,), {r.method.lower(): method(r) for r in routes})


def bind_routes(
    app: faust.App, routes: Sequence[Route], *,
    authenticate: Callable[[str | None], Principal | None],
    max_body_bytes: int, metrics: RouteMetrics, readiness: Callable[[], dict] | None = None,
) -> None:
    """Add every route of the table, then ``/health``, ``/ready`` and ``/metrics``, to the
    Faust app's web server."""
    server = getattr(app.web, "web_app", None)  # aiohttp's Application (Faust's web driver)
    if server is not None:
        server.middlewares.append(lago_envelope)
    guard = Guard(authenticate=authenticate, max_body_bytes=max_body_bytes, metrics=metrics,
                  gate=ReadinessGate(readiness))
    by_path: dict[str, list[Route]] = {}
    for route in routes:  # one view per pattern, in the table's order
        by_path.setdefault(route.path, []).append(route)
    for path, on_path in by_path.items():
        app.page(any_segment(path))(_view(path, on_path, guard))
    _bind_probes(app, metrics, readiness)


def _bind_probes(
    app: faust.App, metrics: RouteMetrics, readiness: Callable[[], dict] | None
) -> None:
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

    @app.page("/metrics")
    class PrometheusMetrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(
                generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )
