"""What every handler answers with: a status, a JSON body and headers, in Lago's shapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import exact_json
from schemas.errors import VALUE_IS_OUT_OF_RANGE

_TITLES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_EVENT_ROOTS = frozenset(("event", "events"))  # bodies whose properties may hold any integer


@dataclass(frozen=True)
class ApiResponse:
    """A status code, a JSON-serialisable body and extra headers (e.g. ``Retry-After``)."""

    status: int
    body: Any
    headers: Mapping[str, str] | None = None


def error(status: int, code: str, details: Mapping[str, Any] | None = None) -> ApiResponse:
    """Lago's error envelope."""
    body: dict[str, Any] = {"status": status, "error": _TITLES.get(status, "Error"),
                            "code": code}
    if details is not None:
        body["error_details"] = dict(details)
    return ApiResponse(status, body)


def validation(details: Mapping[str, Any]) -> ApiResponse:
    """422 ``validation_errors`` with ``error_details``."""
    return error(422, "validation_errors", details)


def iso_ms(ms: int) -> str:
    """Unix milliseconds as RFC 3339 with milliseconds and a ``Z``, as Lago prints times."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_json(body: bytes, root: str) -> tuple[Any, ApiResponse | None]:
    """Decode ``body`` and take its ``root`` key; a 400 on malformed JSON or no root.

    Numbers are exact (:mod:`schemas.exact_json`): ``int``, or ``Decimal`` with every digit.
    An integer beyond 64 bits in a catalog body (any root but events) is a 422
    ``value_out_of_range`` on ``root``: no Lago field holds one, and the stored body is
    echoed in answers that could not be written.
    """
    try:
        payload = exact_json.loads(body)
    except exact_json.JSONDecodeError:
        return None, error(400, "bad_request", {"body": ["invalid_json"]})
    if not isinstance(payload, dict) or root not in payload or payload[root] is None:
        return None, error(400, "bad_request", {root: ["value_is_mandatory"]})
    if root not in _EVENT_ROOTS and exact_json.has_wide_int(payload[root]):
        return None, validation({root: [VALUE_IS_OUT_OF_RANGE]})
    return payload[root], None
