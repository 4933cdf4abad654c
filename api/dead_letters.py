"""Dead letters over HTTP: list them a page at a time, read one, re-drive them (SPEC §4).

The HTTP side of :class:`services.dead_letters.DeadLetterService`: query strings and bodies
are checked here (422 ``validation_errors``), letters rendered as JSON (the payload as text and
base64). Answers stay bounded whatever the letters hold: a page has at most
:data:`api.pagination.MAX_PER_PAGE` letters and shows the first ``PAYLOAD_PREVIEW_BYTES``
bytes of each payload (``payload_truncated`` says when there is more); one letter's whole
payload comes from ``GET …/dead_letters/{topic}/{partition}/{offset}``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from api.envelope import ApiResponse, error
from api.pagination import Page, requested_page
from schemas.bounds import instant_fits
from schemas.catalog import parse_datetime
from services.dead_letters import DeadLetterService, LetterFilter

MAX_LIMIT = 10_000
REDRIVE_FILTERS = frozenset({"error_code", "since", "until", "limit"})
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


def _letter_filter(raw: Mapping[str, Any]) -> tuple[LetterFilter, dict[str, list[str]]]:
    """The filter given by query or body values, and the validation errors."""
    code = raw.get("error_code") or None
    details: dict[str, list[str]] = {}
    if code is not None and not isinstance(code, str):
        details["error_code"] = ["invalid_type"]
    instants: dict[str, int] = {}
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
            instants[name] = ms
    which = LetterFilter(
        error_code=code,
        since_ms=instants.get("since"),
        until_ms=instants.get("until"),
        pending_only=str(raw.get("all", "false")).lower() not in ("true", "1"),
    )
    return which, details


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


class DeadLetterApi:
    """``GET /api/v1/meterline/dead_letters[/{topic}/{partition}/{offset}]`` and
    ``POST …/dead_letters/redrive``. ``list`` and ``get`` read the store: call them off the
    event loop."""

    def __init__(self, letters: DeadLetterService):
        self.letters = letters

    def list(self, org: str, query: Mapping[str, str]) -> ApiResponse:
        """One page of the organization's dead letters, newest first (not yet re-driven unless
        ``all=true``), with Lago's ``meta``. Payloads are previews (see the module)."""
        which, details = _letter_filter(query)
        page = requested_page(query.get("page"), query.get("per_page"))
        if not isinstance(page, Page):
            details.update(page.body["error_details"])
        if details or not isinstance(page, Page):
            return error(422, "validation_errors", details)
        total, letters = self.letters.page(org, which, page=page.number, per_page=page.size)
        return ApiResponse(200, {
            "dead_letters": [_render(d, preview=True) for d in letters],
            "meta": page.meta(total),
        })

    def get(self, org: str, topic: str, partition: str, offset: str) -> ApiResponse:
        """One letter with its whole payload, by its source position (re-driven or not)."""
        try:
            position = (topic, int(partition), int(offset))
        except ValueError:
            return error(404, "dead_letter_not_found")
        if not (0 <= position[1] <= _MAX_UINT32 and 0 <= position[2] <= _MAX_UINT64):
            return error(404, "dead_letter_not_found")
        found = self.letters.find(org, position)
        if found is None:
            return error(404, "dead_letter_not_found")
        return ApiResponse(200, {"dead_letter": _render(found, preview=False)})

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
        which, details = _letter_filter({**raw, "all": "false"})
        limit = _page_number(raw.get("limit"), 1000, MAX_LIMIT)
        if limit is None:
            details["limit"] = ["value_is_out_of_range"]
        if details or limit is None:
            return error(422, "validation_errors", details)
        done = await self.letters.redrive(org, which, limit=limit)
        return ApiResponse(200, {"redriven": done.count, "by_reason": done.by_reason})
