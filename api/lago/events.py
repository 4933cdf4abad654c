"""``GET /api/v1/events/{transaction_id}``: Lago's event lookup, of stored (processed) events."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from api.envelope import ApiResponse, error, iso_ms
from api.lago.common import LagoContext, Query, first
from schemas import exact_json
from schemas.catalog import stable_id
from schemas.numbers import decimal_to_string


class EventLookup:
    """Stored events of one organization by transaction id."""

    def __init__(self, ctx: LagoContext):
        self.store = ctx.store

    def get(self, org: str, transaction_id: str, query: Query | None = None) -> ApiResponse:
        """``GET /api/v1/events/{transaction_id}``: a stored (processed) event.

        Optional ``external_subscription_id`` picks one when several subscriptions used the
        same transaction id. Events still in Kafka, duplicates and dead letters are not found.
        """
        rows = self.store.find_events(org, transaction_id)
        wanted = first(query, "external_subscription_id")
        if wanted is not None:
            rows = [r for r in rows if r.get("external_subscription_id") == wanted]
        if not rows:
            return error(404, "event_not_found")
        return ApiResponse(200, {"event": event_json(org, rows[0])})


def event_json(org: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Lago's ``event`` object from a stored enriched row."""
    properties = row.get("properties")
    if isinstance(properties, str | bytes):
        try:  # every digit of a number property, as it was sent
            properties = exact_json.loads(properties or b"{}")
        except exact_json.JSONDecodeError:
            properties = {}
    precise = row.get("precise_total_amount_cents")
    if isinstance(precise, Decimal):
        precise = decimal_to_string(precise)
    elif precise is not None:
        precise = str(precise)
    external_subscription_id = str(row.get("external_subscription_id") or "")
    transaction_id = str(row.get("transaction_id") or "")
    ingested = row.get("ingested_at_ms")
    return {
        "lago_id": stable_id(org, "event", external_subscription_id, transaction_id),
        "transaction_id": transaction_id,
        "external_subscription_id": external_subscription_id,
        "lago_subscription_id": row.get("subscription_id") or None,
        "lago_customer_id": row.get("customer_id") or None,
        "code": row.get("code"),
        "timestamp": iso_ms(int(row.get("timestamp_ms") or 0)),
        "properties": properties if isinstance(properties, dict) else {},
        "precise_total_amount_cents": precise,
        "created_at": iso_ms(int(ingested)) if ingested is not None else None,
    }
