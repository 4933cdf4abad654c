"""Usage events (SPEC §1): validation of a decoded JSON object into a :class:`UsageEvent`.

Decisions where the SPEC is silent (Lago's behaviour unless noted):

* Required strings that are missing, ``null``, empty or whitespace-only → ``value_is_mandatory``
  (Lago's ``blank?``); non-strings (e.g. a numeric ``transaction_id``) → ``invalid_type``; they
  are not coerced. Values are kept verbatim (no trimming). Lengths count characters:
  ``transaction_id``, ``external_subscription_id``, ``code`` and ``organization_id`` longer than
  :data:`schemas.bounds.MAX_ID_LENGTH` → ``value_is_too_long``.
* ``properties: null`` is the same as missing (``{}``). Values must be str, int, finite float,
  finite Decimal (how :mod:`schemas.exact_json` reads a JSON number with a fraction), bool or
  None; a nested object/list or NaN/±inf → ``invalid_value`` on ``"properties"``; a non-object
  → ``invalid_type``. The dict is referenced, not copied (hot path). A number's magnitude is
  checked where it is used as a value (enrichment: ``value_out_of_range``), not here.
* ``precise_total_amount_cents``: number or numeric string (:mod:`schemas.numbers`); bool,
  list, object → ``invalid_type``; non-numeric string (including ``""``), NaN/±inf →
  ``invalid_value``; a number that does not fit ``Decimal(38, 12)`` (``≥ 10**26``,
  :func:`schemas.bounds.decimal_fits`) → ``value_is_out_of_range`` (on the raw topic a
  ``value_out_of_range`` dead letter). Stored as a normalized exact Decimal.
* ``timestamp``: see :mod:`schemas.timestamps` (outside ``[1970, 2100)`` →
  ``value_is_out_of_range``).
* Unknown extra fields are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple

from schemas.bounds import MAX_ID_LENGTH, decimal_fits
from schemas.errors import (
    INVALID_TYPE,
    INVALID_VALUE,
    VALUE_IS_MANDATORY,
    VALUE_IS_OUT_OF_RANGE,
    VALUE_IS_TOO_LONG,
    InvalidField,
)
from schemas.numbers import decimal_to_string, to_decimal
from schemas.timestamps import format_timestamp_seconds, parse_timestamp_ms

__all__ = [
    "MAX_TRANSACTION_ID_LENGTH",
    "UsageEvent",
    "event_to_json_dict",
    "parse_event",
    "partition_key",
    "validate_event_payload",
]

MAX_TRANSACTION_ID_LENGTH = MAX_ID_LENGTH  # SPEC §1: 256, as every other identifier


class UsageEvent(NamedTuple):
    """A validated usage event; ``timestamp_ms`` is milliseconds since the epoch (UTC).

    Immutable like a frozen dataclass, and about 2.5 times cheaper to build (one per message).
    """

    organization_id: str
    external_subscription_id: str
    code: str
    transaction_id: str
    timestamp_ms: int
    properties: dict[str, object]
    precise_total_amount_cents: Decimal | None


def _required_str(obj: dict[str, Any], field: str, max_len: int = MAX_ID_LENGTH) -> str:
    value = obj.get(field)
    return _check_required_str(value, field, max_len)


def _check_required_str(value: object, field: str, max_len: int = MAX_ID_LENGTH) -> str:
    if type(value) is not str:
        if value is None:
            raise InvalidField(field, VALUE_IS_MANDATORY, f"{field} is required")
        if not isinstance(value, str):
            raise InvalidField(field, INVALID_TYPE, f"{field} must be a string")
    if not value or value.isspace():
        raise InvalidField(field, VALUE_IS_MANDATORY, f"{field} must not be blank")
    if len(value) > max_len:
        raise InvalidField(
            field, VALUE_IS_TOO_LONG, f"{field} is longer than {max_len} characters"
        )
    return value


def _properties(obj: dict[str, Any]) -> dict[str, object]:
    props = obj.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise InvalidField("properties", INVALID_TYPE, "properties must be a JSON object")
    for key, value in props.items():
        t = type(value)
        if t is str or t is int or t is bool or value is None:
            pass
        elif t is Decimal or t is float:
            if not (value.is_finite() if t is Decimal else math.isfinite(value)):
                raise InvalidField(
                    "properties", INVALID_VALUE, f"properties.{key} is not a finite number"
                )
        elif not isinstance(value, (str, int, float, Decimal)) or (
            isinstance(value, float) and not math.isfinite(value)
        ) or (isinstance(value, Decimal) and not value.is_finite()):
            raise InvalidField(
                "properties",
                INVALID_VALUE,
                f"properties.{key} must be a string, number, boolean or null",
            )
        if type(key) is not str:
            raise InvalidField("properties", INVALID_VALUE, "property names must be strings")
    return props


def _precise_total_amount_cents(obj: dict[str, Any]) -> Decimal | None:
    value = obj.get("precise_total_amount_cents")
    if value is None:
        return None
    field = "precise_total_amount_cents"
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise InvalidField(field, INVALID_TYPE, f"{field} must be a decimal number or string")
    amount = to_decimal(value)
    if amount is None:
        if isinstance(value, int) or (isinstance(value, Decimal) and value.is_finite()):
            # a number beyond ±10**1000 (schemas.numbers.MAX_EXPONENT)
            raise InvalidField(
                field, VALUE_IS_OUT_OF_RANGE, f"{field} does not fit Decimal(38, 12)")
        raise InvalidField(field, INVALID_VALUE, f"{field} is not a valid decimal")
    if not decimal_fits(amount):
        raise InvalidField(field, VALUE_IS_OUT_OF_RANGE, f"{field} does not fit Decimal(38, 12)")
    return amount


def _organization_id(obj: dict[str, Any], organization_id: str | None) -> str:
    if organization_id is not None:
        return _check_required_str(organization_id, "organization_id")
    return _required_str(obj, "organization_id")


def _not_an_object() -> InvalidField:
    return InvalidField("event", INVALID_TYPE, "event must be a JSON object")


def parse_event(obj: object, *, now_ms: int, organization_id: str | None = None) -> UsageEvent:
    """Validate a decoded event object; raise :class:`InvalidField` at the first bad field.

    ``now_ms`` is the ingestion time used when ``timestamp`` is missing. ``organization_id``,
    when given (the ingest API, from the API key), wins over the payload's; otherwise the
    payload's ``organization_id`` must be a non-blank string. A non-object raises
    ``InvalidField("event", "invalid_type")``.
    """
    if not isinstance(obj, dict):
        raise _not_an_object()
    transaction_id = obj.get("transaction_id")
    external_subscription_id = obj.get("external_subscription_id")
    code = obj.get("code")
    if not (  # the usual event, checked inline (hot path); any doubt takes the full checks
        type(transaction_id) is str and type(external_subscription_id) is str
        and type(code) is str and 0 < len(transaction_id) <= MAX_TRANSACTION_ID_LENGTH
        and 0 < len(external_subscription_id) <= MAX_ID_LENGTH
        and 0 < len(code) <= MAX_ID_LENGTH and not transaction_id.isspace()
        and not external_subscription_id.isspace() and not code.isspace()
    ):
        transaction_id = _required_str(obj, "transaction_id", MAX_TRANSACTION_ID_LENGTH)
        external_subscription_id = _required_str(obj, "external_subscription_id")
        code = _required_str(obj, "code")
    timestamp_ms = parse_timestamp_ms(obj.get("timestamp"), now_ms=now_ms)
    properties = _properties(obj)
    precise_total_amount_cents = _precise_total_amount_cents(obj)
    org = _organization_id(obj, organization_id)
    return UsageEvent(
        organization_id=org,
        external_subscription_id=external_subscription_id,
        code=code,
        transaction_id=transaction_id,
        timestamp_ms=timestamp_ms,
        properties=properties,
        precise_total_amount_cents=precise_total_amount_cents,
    )


def validate_event_payload(
    obj: object, *, now_ms: int, organization_id: str | None = None
) -> dict[str, list[str]]:
    """Lago-style ``error_details`` (field → [codes]) listing EVERY invalid field; ``{}`` if valid.

    Same rules as :func:`parse_event`. For throughput, call :func:`parse_event` first and this
    only when it raised, to build the 422 body.
    """
    if not isinstance(obj, dict):
        error = _not_an_object()
        return {error.field: [error.code]}
    checks: tuple[Callable[[], object], ...] = (
        lambda: _required_str(obj, "transaction_id", MAX_TRANSACTION_ID_LENGTH),
        lambda: _required_str(obj, "external_subscription_id"),
        lambda: _required_str(obj, "code"),
        lambda: parse_timestamp_ms(obj.get("timestamp"), now_ms=now_ms),
        lambda: _properties(obj),
        lambda: _precise_total_amount_cents(obj),
        lambda: _organization_id(obj, organization_id),
    )
    details: dict[str, list[str]] = {}
    for check in checks:
        try:
            check()
        except InvalidField as error:
            details.setdefault(error.field, []).append(error.code)
    return details


def event_to_json_dict(e: UsageEvent) -> dict[str, Any]:
    """The JSON object the ingest API writes to the raw topic, with
    :func:`schemas.exact_json.dumps` (properties may hold exact ``Decimal`` numbers).

    ``timestamp`` is a string of Unix seconds with exactly three decimals
    (``"1700000000.123"``): lossless for any reader, unlike a float. ``organization_id`` is
    always set; ``precise_total_amount_cents`` is a plain decimal string or null.
    ``parse_event(exact_json.loads(exact_json.dumps(event_to_json_dict(e))), now_ms=…) == e``.
    """
    amount = e.precise_total_amount_cents
    return {
        "organization_id": e.organization_id,
        "external_subscription_id": e.external_subscription_id,
        "code": e.code,
        "transaction_id": e.transaction_id,
        "timestamp": format_timestamp_seconds(e.timestamp_ms),
        "properties": e.properties,
        "precise_total_amount_cents": None if amount is None else decimal_to_string(amount),
    }


def partition_key(organization_id: str, external_subscription_id: str) -> bytes:
    """Raw-topic message key: ``b"<organization_id>-<external_subscription_id>"`` (UTF-8)."""
    return f"{organization_id}-{external_subscription_id}".encode()
