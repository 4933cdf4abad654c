"""THE route table of the HTTP API: every (method, path pattern, handler, needs a body).

Path patterns name their parameters ``{name}``; each matches one whole segment, whatever it
holds. Each route says which key roles may call it (:data:`INGEST`, :data:`READ`,
:data:`ADMIN`; a route that says nothing is for admins). Every route is authenticated (401),
authorized (403 ``forbidden``), gated until the worker is ready and counted by its
pattern (see :mod:`api.server`, which binds the table to the web server, in this order: where
two patterns match a path, the first listed wins for the methods it has). Handlers are
coroutines; store calls run in a thread (:func:`threaded`), off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from api.api_keys import ApiKeyApi
from api.dead_letters import DeadLetterApi
from api.envelope import ApiResponse
from api.handlers import Api
from api.lago import LagoControlApi
from services.api_keys import Principal, Role

#: Who may call a route: posting events, reading, everything else (admins only).
INGEST = frozenset({Role.INGEST, Role.ADMIN})
READ = frozenset({Role.READ, Role.ADMIN})
ADMIN = frozenset({Role.ADMIN})


@dataclass(frozen=True)
class Call:
    """One authenticated request as a handler sees it."""

    org: str
    params: Mapping[str, str]  # the path's {name} segments
    query: Sequence[tuple[str, str]]  # every pair, repeated keys included, in order
    body: bytes = b""  # read only for routes that need it
    principal: Principal | None = None  # the key that made it

    @property
    def who(self) -> Principal:
        """The key that made the request (every routed call has one)."""
        if self.principal is None:
            raise RuntimeError("an unauthenticated call reached a handler")
        return self.principal

    def first_values(self) -> dict[str, str]:
        """The query with the first value of each key."""
        values: dict[str, str] = {}
        for key, value in self.query:
            values.setdefault(key, value)
        return values


Handler = Callable[[Call], Awaitable[ApiResponse]]


@dataclass(frozen=True)
class Route:
    """One entry of the table."""

    method: str
    path: str
    handler: Handler
    needs_body: bool = False
    roles: frozenset[Role] = ADMIN  # who may call it


def threaded(fn: Callable[[Call], ApiResponse]) -> Handler:
    """A handler running ``fn`` in a worker thread."""

    async def handler(call: Call) -> ApiResponse:
        return await asyncio.to_thread(fn, call)

    return handler


def timed(handler: Handler, observe: Callable[[float], None]) -> Handler:
    """``handler``, its duration in seconds given to ``observe``, failed or not."""

    async def timed_handler(call: Call) -> ApiResponse:
        started = time.perf_counter()
        try:
            return await handler(call)
        finally:
            observe(time.perf_counter() - started)

    return timed_handler


def lago_routes(lago: LagoControlApi) -> list[Route]:
    """Billable metrics, plans, customers, subscriptions and the event lookup."""
    m, p, c, s = lago.billable_metrics, lago.plans, lago.customers, lago.subscriptions
    return [
        Route("GET", "/api/v1/billable_metrics", threaded(lambda k: m.list(k.org, k.query)),
              roles=READ),
        Route("POST", "/api/v1/billable_metrics",
              threaded(lambda k: m.create(k.org, k.body)), needs_body=True),
        Route("GET", "/api/v1/billable_metrics/{code}",
              threaded(lambda k: m.get(k.org, k.params["code"])), roles=READ),
        Route("PUT", "/api/v1/billable_metrics/{code}",
              threaded(lambda k: m.update(k.org, k.params["code"], k.body)), needs_body=True),
        Route("DELETE", "/api/v1/billable_metrics/{code}",
              threaded(lambda k: m.delete(k.org, k.params["code"]))),
        Route("GET", "/api/v1/plans", threaded(lambda k: p.list(k.org, k.query)), roles=READ),
        Route("POST", "/api/v1/plans",
              threaded(lambda k: p.create(k.org, k.body)), needs_body=True),
        Route("GET", "/api/v1/plans/{code}", threaded(lambda k: p.get(k.org, k.params["code"])),
              roles=READ),
        Route("PUT", "/api/v1/plans/{code}",
              threaded(lambda k: p.update(k.org, k.params["code"], k.body)), needs_body=True),
        Route("DELETE", "/api/v1/plans/{code}",
              threaded(lambda k: p.delete(k.org, k.params["code"]))),
        Route("GET", "/api/v1/customers", threaded(lambda k: c.list(k.org, k.query)), roles=READ),
        Route("POST", "/api/v1/customers",
              threaded(lambda k: c.create(k.org, k.body)), needs_body=True),
        Route("GET", "/api/v1/customers/{external_id}",
              threaded(lambda k: c.get(k.org, k.params["external_id"])), roles=READ),
        Route("GET", "/api/v1/subscriptions", threaded(lambda k: s.list(k.org, k.query)),
              roles=READ),
        Route("POST", "/api/v1/subscriptions",
              threaded(lambda k: s.create(k.org, k.body)), needs_body=True),
        Route("GET", "/api/v1/subscriptions/{external_id}",
              threaded(lambda k: s.get(k.org, k.params["external_id"])), roles=READ),
        Route("DELETE", "/api/v1/subscriptions/{external_id}",
              threaded(lambda k: s.terminate(k.org, k.params["external_id"]))),
        Route("GET", "/api/v1/events/{transaction_id}",
              threaded(lambda k: lago.events.get(k.org, k.params["transaction_id"], k.query)),
              roles=READ),
    ]


def dead_letter_routes(letters: DeadLetterApi) -> list[Route]:
    """List (a page at a time), read one, re-drive."""
    return [
        Route("GET", "/api/v1/meterline/dead_letters",
              threaded(lambda k: letters.list(k.org, k.first_values())), roles=READ),
        Route("GET", "/api/v1/meterline/dead_letters/{source_topic}/{source_partition}"
                     "/{source_offset}",
              threaded(lambda k: letters.get(k.org, k.params["source_topic"],
                                             k.params["source_partition"],
                                             k.params["source_offset"])), roles=READ),
        Route("POST", "/api/v1/meterline/dead_letters/redrive",
              lambda k: letters.redrive(k.org, k.body), needs_body=True),
    ]


def api_key_routes(keys: ApiKeyApi) -> list[Route]:
    """List, create and revoke keys (admins)."""
    return [
        Route("GET", "/api/v1/meterline/api_keys",
              threaded(lambda k: keys.list(k.who, k.first_values()))),
        Route("POST", "/api/v1/meterline/api_keys",
              threaded(lambda k: keys.create(k.who, k.body)), needs_body=True),
        Route("DELETE", "/api/v1/meterline/api_keys/{id}",
              threaded(lambda k: keys.revoke(k.who, k.params["id"], k.first_values()))),
    ]


def api_routes(
    api: Api, *, lago: LagoControlApi | None = None, dead_letters: DeadLetterApi | None = None,
    api_keys: ApiKeyApi | None = None,
    observe_usage_read: Callable[[float], None] = lambda seconds: None,
) -> list[Route]:
    """Every route of the API, in the order they are bound."""
    usage = threaded(lambda k: api.current_usage(k.org, k.params["external_customer_id"],
                                                 k.first_values()))
    return [
        Route("POST", "/api/v1/events", lambda k: api.post_event(k.org, k.body),
              needs_body=True, roles=INGEST),
        Route("POST", "/api/v1/events/batch", lambda k: api.post_events_batch(k.org, k.body),
              needs_body=True, roles=INGEST),
        Route("GET", "/api/v1/customers/{external_customer_id}/current_usage",
              timed(usage, observe_usage_read), roles=READ),
        *(lago_routes(lago) if lago is not None else []),
        Route("POST", "/api/v1/meterline/catalog",
              threaded(lambda k: api.apply_catalog(k.org, k.body)), needs_body=True),
        Route("GET", "/api/v1/meterline/reconcile", lambda k: api.reconcile(), roles=READ),
        Route("GET", "/api/v1/meterline/status", lambda k: api.status(), roles=READ),
        *(dead_letter_routes(dead_letters) if dead_letters is not None else []),
        *(api_key_routes(api_keys) if api_keys is not None else []),
    ]
