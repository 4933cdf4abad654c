"""Dead letters over HTTP: list them a page at a time, read one, re-drive them (SPEC §4).

Every store call runs in a worker thread, off the event loop. Answers stay bounded whatever
the letters hold: a page has at most :data:`MAX_PER_PAGE` letters and shows the first
:data:`PAYLOAD_PREVIEW_BYTES` bytes of each payload (``payload_truncated`` says when there is
more); one letter's whole payload comes from ``GET …/dead_letters/{topic}/{partition}/{offset}``.
A re-drive reads and publishes :data:`REDRIVE_CHUNK` letters at a time.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any

import orjson

from meterline.api import ApiResponse, error, page_meta
from schemas.bounds import MAX_ID_LENGTH, instant_fits
from schemas.catalog import parse_datetime
from schemas.event import partition_key
from services.publishing import EventPublisher
from sinks.store import Store

MAX_LIMIT = 10_000
REDRIVE_FILTERS = frozenset({"error_code", "since", "until", "limit"})
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
PAYLOAD_PREVIEW_BYTES = 2048
REDRIVE_CHUNK = 100
_MAX_UINT32 = 2**32 - 1
_MAX_UINT64 = 2**64 - 1


def _page_number(text: Any, default: int, upper: int | None) -> int | None:
    """A page number or size: an integer in ``[1, upper]`` (``default`` when absent)."""
    if text is None:
        return default
    try:
        value = int(str(text))
    except ValueError:
        return None
    if value < 1 or (upper is not None and value > upper):
        return None
    return value


class DeadLetterApi:
    """``GET /api/v1/meterline/dead_letters[/{topic}/{partition}/{offset}]`` and
    ``POST …/dead_letters/redrive``."""

    def __init__(self, *, store: Store, publisher: EventPublisher, default_organization_id: str):
        self.store = store
        self.publisher = publisher
        self.default_organization_id = default_organization_id

    def _scope(self, org: str) -> dict[str, Any]:
        return {
            "organization_id": org,
            "include_unattributed": org == self.default_organization_id,
        }

    def _filters(self, org: str, raw: Mapping[str, Any]) -> tuple[dict, dict[str, list[str]]]:
        """Store filters from query or body values, and the validation errors."""
        code = raw.get("error_code") or None
        filters: dict[str, Any] = {
            **self._scope(org),
            "error_code": code,
            "pending_only": str(raw.get("all", "false")).lower() not in ("true", "1"),
        }
        details: dict[str, list[str]] = {}
        if code is not None and not isinstance(code, str):
            details["error_code"] = ["invalid_type"]
        for name in ("since", "until"):
            value = raw.get(name)
            if value:
                try:
                    ms = int(parse_datetime(value).timestamp() * 1000)
                except (ValueError, TypeError, OverflowError):
                    details[name] = ["invalid_date"]
                    continue
                if not instant_fits(ms):
                    details[name] = ["value_is_out_of_range"]
                    continue
                filters[f"{name}_ms"] = ms
        return filters, details

    @staticmethod
    def _render(letter: dict, *, preview: bool) -> dict:
        payload: bytes = letter["payload"]
        size = letter.get("payload_bytes", len(payload))
        return {
            **{k: v for k, v in letter.items() if k not in ("payload", "payload_bytes")},
            "payload": payload.decode("utf-8", errors="replace"),
            "payload_base64": base64.b64encode(payload).decode(),
            "payload_bytes": size,
            "payload_truncated": preview and size > len(payload),
        }

    def list(self, org: str, query: Mapping[str, str]) -> ApiResponse:
        """One page of the organization's dead letters, newest first (not yet re-driven unless
        ``all=true``), with Lago's ``meta``. Payloads are previews (see the module)."""
        filters, details = self._filters(org, query)
        page = _page_number(query.get("page"), 1, None)
        per_page = _page_number(query.get("per_page"), DEFAULT_PER_PAGE, MAX_PER_PAGE)
        if page is None:
            details["page"] = ["value_is_out_of_range"]
        if per_page is None:
            details["per_page"] = ["value_is_out_of_range"]
        if details or page is None or per_page is None:
            return error(422, "validation_errors", details)
        total = self.store.count_dead_letters(**filters)
        skip = (page - 1) * per_page
        letters = (
            self.store.dead_letters(**filters, limit=per_page, offset=skip,
                                    payload_limit=PAYLOAD_PREVIEW_BYTES)
            if skip < total else []
        )
        return ApiResponse(200, {
            "dead_letters": [self._render(d, preview=True) for d in letters],
            "meta": page_meta(page, per_page, total),
        })

    def get(self, org: str, topic: str, partition: str, offset: str) -> ApiResponse:
        """One letter with its whole payload, by its source position (re-driven or not)."""
        try:
            position = (topic, int(partition), int(offset))
        except ValueError:
            return error(404, "dead_letter_not_found")
        if not (0 <= position[1] <= _MAX_UINT32 and 0 <= position[2] <= _MAX_UINT64):
            return error(404, "dead_letter_not_found")
        found = self.store.dead_letters(**self._scope(org), position=position, limit=1)
        if not found:
            return error(404, "dead_letter_not_found")
        return ApiResponse(200, {"dead_letter": self._render(found[0], preview=False)})

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
        filters, details = self._filters(org, {**raw, "all": "false"})
        limit = _page_number(raw.get("limit"), 1000, MAX_LIMIT)
        if limit is None:
            details["limit"] = ["value_is_out_of_range"]
        if details or limit is None:
            return error(422, "validation_errors", details)
        by_reason: dict[str, int] = {}
        redriven = 0
        while redriven < limit:  # a chunk at a time: memory stays bounded
            size = min(REDRIVE_CHUNK, limit - redriven)
            letters = await asyncio.to_thread(self.store.dead_letters, **filters, limit=size)
            if not letters:
                break
            await self.publisher.publish([_record(d) for d in letters])  # in Kafka first ...
            await asyncio.to_thread(self.store.mark_redriven, letters)  # ... then recorded (a
            # crash between: sent twice, and the pipeline counts the second copy a duplicate)
            for d in letters:
                by_reason[d["error_code"]] = by_reason.get(d["error_code"], 0) + 1
            redriven += len(letters)
            if len(letters) < size:
                break
        return ApiResponse(200, {"redriven": redriven, "by_reason": by_reason})


def _record(letter: dict) -> tuple[bytes, bytes]:
    """The raw-topic record of a letter: keyed as the API keys events when its ids are known
    (and fit the bounds), else unkeyed; the value is the original bytes."""
    org, sub = letter["organization_id"], letter["external_subscription_id"]
    if org and sub and len(org) <= MAX_ID_LENGTH and len(sub) <= MAX_ID_LENGTH:
        return partition_key(org, sub), letter["payload"]
    return b"", letter["payload"]
