"""Dead letters over HTTP: list them, and re-drive them to the raw topic (SPEC §4)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from meterline.api import ApiResponse, EventPublisher, error
from schemas.catalog import parse_datetime
from schemas.event import partition_key
from sinks.store import Store

MAX_LIMIT = 10_000
REDRIVE_FILTERS = frozenset({"error_code", "since", "until", "limit"})


class DeadLetterApi:
    """``GET /api/v1/meterline/dead_letters`` and ``POST …/dead_letters/redrive``."""

    def __init__(self, *, store: Store, publisher: EventPublisher, default_organization_id: str):
        self.store = store
        self.publisher = publisher
        self.default_organization_id = default_organization_id

    def _filters(self, org: str, raw: Mapping[str, Any]) -> tuple[dict, ApiResponse | None]:
        filters: dict[str, Any] = {
            "organization_id": org,
            "include_unattributed": org == self.default_organization_id,
            "error_code": raw.get("error_code") or None,
            "pending_only": str(raw.get("all", "false")).lower() not in ("true", "1"),
        }
        details: dict[str, list[str]] = {}
        for name in ("since", "until"):
            value = raw.get(name)
            if value:
                try:
                    filters[f"{name}_ms"] = int(parse_datetime(value).timestamp() * 1000)
                except (ValueError, TypeError):
                    details[name] = ["invalid_date"]
        try:
            limit = int(raw.get("limit", 1000))
            if not 1 <= limit <= MAX_LIMIT:
                raise ValueError
            filters["limit"] = limit
        except (ValueError, TypeError):
            details["limit"] = ["value_is_out_of_range"]
        return filters, (error(422, "validation_errors", details) if details else None)

    @staticmethod
    def _render(letter: dict) -> dict:
        payload: bytes = letter["payload"]
        return {
            **{k: v for k, v in letter.items() if k != "payload"},
            "payload": payload.decode("utf-8", errors="replace"),
            "payload_base64": base64.b64encode(payload).decode(),
        }

    def list(self, org: str, query: Mapping[str, str]) -> ApiResponse:
        """Dead letters of the organization (not yet re-driven unless ``all=true``)."""
        filters, problem = self._filters(org, query)
        if problem:
            return problem
        letters = self.store.dead_letters(**filters)
        return ApiResponse(200, {"dead_letters": [self._render(d) for d in letters]})

    async def redrive(self, org: str, body: bytes) -> ApiResponse:
        """Re-publish the selected dead letters' original bytes to the raw topic."""
        try:
            raw = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return error(400, "bad_request", {"body": ["invalid_json"]})
        if not isinstance(raw, dict):
            return error(400, "bad_request", {"body": ["invalid_type"]})
        unknown = sorted(set(raw) - REDRIVE_FILTERS)
        if unknown:
            return error(422, "validation_errors", {k: ["unknown_filter"] for k in unknown})
        filters, problem = self._filters(org, {**raw, "all": "false"})
        if problem:
            return problem
        letters = self.store.dead_letters(**filters)
        records = [
            (
                partition_key(d["organization_id"], d["external_subscription_id"])
                if d["organization_id"] and d["external_subscription_id"] else b"",
                d["payload"],
            )
            for d in letters
        ]
        await self.publisher.publish(records)  # durable in Kafka first ...
        self.store.mark_redriven(letters)  # ... then recorded (a crash between: sent twice,
        # and the pipeline's dedup counts the second copy as a duplicate)
        by_reason: dict[str, int] = {}
        for d in letters:
            by_reason[d["error_code"]] = by_reason.get(d["error_code"], 0) + 1
        return ApiResponse(200, {"redriven": len(letters), "by_reason": by_reason})
