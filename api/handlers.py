"""Meterline's own endpoints and Lago's event ingestion, independent of the web server:
request in, :class:`~api.envelope.ApiResponse` out (:mod:`api.routes` maps them to paths).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from api.envelope import ApiResponse, error, iso_ms, parse_json
from schemas import exact_json
from schemas.bounds import MAX_EVENT_BYTES
from schemas.catalog import CatalogValidationError
from schemas.errors import VALUE_IS_TOO_LONG, InvalidField
from schemas.event import UsageEvent, event_to_json_dict, parse_event, partition_key
from schemas.event import validate_event_payload as event_errors
from services.api_keys import KeyRing, Principal
from services.catalog import CatalogService
from services.publishing import EventPublisher
from services.usage import PeriodOutOfRange, UsageNotFound, UsageService


def _lago_event(event: UsageEvent, received_ms: int) -> dict[str, Any]:
    """Lago's ``event`` answer; ids are unknown until the pipeline has enriched it."""
    return {
        "lago_id": None,
        "transaction_id": event.transaction_id,
        "lago_customer_id": None,
        "lago_subscription_id": None,
        "external_subscription_id": event.external_subscription_id,
        "code": event.code,
        "timestamp": iso_ms(event.timestamp_ms),
        # Faust writes responses with plain orjson: exact numbers become Fragments first
        "properties": exact_json.jsonable(event.properties),
        "precise_total_amount_cents": (
            None if event.precise_total_amount_cents is None
            else str(event.precise_total_amount_cents)
        ),
        "created_at": iso_ms(received_ms),
    }


def _record(event: UsageEvent) -> tuple[bytes, bytes] | None:
    """The raw-topic ``(key, value)`` of ``event``, or None when the value would exceed
    ``MAX_EVENT_BYTES`` (the pipeline dead-letters such a message as ``event_too_large``)."""
    value = exact_json.dumps(event_to_json_dict(event))
    if len(value) > MAX_EVENT_BYTES:
        return None
    return partition_key(event.organization_id, event.external_subscription_id), value


class Api:
    """Lago-compatible endpoints over the catalog, the raw topic and the usage reader."""

    def __init__(
        self,
        *,
        key_ring: Callable[[], KeyRing],
        catalog: CatalogService,
        usage: UsageService,
        publisher: EventPublisher,
        status: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        reconcile: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        max_batch_events: int = 100,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ):
        self.key_ring = key_ring
        self.catalog = catalog
        self.usage_service = usage
        self.publisher = publisher
        self.status_provider = status
        self.reconcile_provider = reconcile
        self.max_batch_events = max_batch_events
        self.clock_ms = clock_ms

    # --- helpers -------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal | None:
        """Who a ``Bearer <key>`` header is, or None (see :class:`KeyRing`)."""
        return self.key_ring().principal(authorization)

    # --- events --------------------------------------------------------------------------------
    async def post_event(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/events``: validate one event and write it to the raw topic.

        An event whose raw-topic JSON would exceed ``MAX_EVENT_BYTES`` is a 422
        ``value_is_too_long`` on ``event`` (the pipeline would dead-letter it).
        """
        raw, problem = parse_json(body, "event")
        if problem:
            return problem
        now = self.clock_ms()
        try:
            event = parse_event(raw, now_ms=now, organization_id=org)
        except InvalidField:
            return error(422, "validation_errors", event_errors(raw, now_ms=now,
                                                                organization_id=org))
        record = _record(event)
        if record is None:
            return error(422, "validation_errors", {"event": [VALUE_IS_TOO_LONG]})
        await self.publisher.publish([record])
        return ApiResponse(200, {"event": _lago_event(event, now)})

    async def post_events_batch(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/events/batch``: all events valid, or none is written (422 by index).

        An event whose raw-topic JSON would exceed ``MAX_EVENT_BYTES`` is invalid too:
        ``{"<index>": {"event": ["value_is_too_long"]}}``.
        """
        raw, problem = parse_json(body, "events")
        if problem:
            return problem
        if not isinstance(raw, list) or not raw:
            return error(422, "validation_errors", {"events": ["value_is_mandatory"]})
        if len(raw) > self.max_batch_events:
            return error(422, "validation_errors", {"events": ["too_many_events"]})
        now = self.clock_ms()
        events: list[UsageEvent] = []
        records: list[tuple[bytes, bytes]] = []
        details: dict[str, Any] = {}
        for i, item in enumerate(raw):
            try:
                event = parse_event(item, now_ms=now, organization_id=org)
            except InvalidField:
                details[str(i)] = event_errors(item, now_ms=now, organization_id=org)
                continue
            record = _record(event)
            if record is None:
                details[str(i)] = {"event": [VALUE_IS_TOO_LONG]}
                continue
            events.append(event)
            records.append(record)
        if details:
            return error(422, "validation_errors", details)
        await self.publisher.publish(records)
        return ApiResponse(200, {"events": [_lago_event(e, now) for e in events]})

    # --- catalog -------------------------------------------------------------------------------
    def apply_catalog(self, org: str, body: bytes) -> ApiResponse:
        """``POST /api/v1/meterline/catalog``: apply a whole catalog document at once."""
        raw, problem = parse_json(body, "catalog")
        if problem:
            return problem
        if not isinstance(raw, dict):
            return error(422, "validation_errors", {"catalog": ["invalid_type"]})
        try:
            counts = self.catalog.apply_document(org, raw)
        except CatalogValidationError as exc:
            return error(422, "validation_errors", exc.details)
        return ApiResponse(200, {"applied": counts, "catalog_version": self.catalog.version})

    # --- usage ---------------------------------------------------------------------------------
    def current_usage(
        self, org: str, external_customer_id: str, query: Mapping[str, str]
    ) -> ApiResponse:
        """``GET /api/v1/customers/{id}/current_usage?external_subscription_id=…``."""
        sub_id = query.get("external_subscription_id")
        if not sub_id:
            return error(
                422, "validation_errors", {"external_subscription_id": ["value_is_mandatory"]}
            )
        try:
            index = int(query.get("period_index", "0"))
        except ValueError:
            return error(422, "validation_errors", {"period_index": ["invalid_value"]})
        try:
            usage = self.usage_service.usage(
                org, sub_id, external_customer_id=external_customer_id, period_index=index
            )
        except UsageNotFound as exc:  # Lago answers a pending subscription with a 405
            return error(405 if exc.code == "no_active_subscription" else 404, exc.code)
        except PeriodOutOfRange:
            return error(422, "validation_errors", {"period_index": ["value_is_out_of_range"]})
        return ApiResponse(200, {"customer_usage": usage})

    async def status(self) -> ApiResponse:
        """``GET /api/v1/meterline/status``: pipeline counters and reconciliation."""
        if self.status_provider is None:
            return ApiResponse(200, {})
        return ApiResponse(200, await self.status_provider())

    async def reconcile(self) -> ApiResponse:
        """``GET /api/v1/meterline/reconcile``: manifest counts checked against stored rows."""
        if self.reconcile_provider is None:
            return error(503, "not_available")
        return ApiResponse(200, await self.reconcile_provider())
