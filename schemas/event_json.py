"""A fast path for the usual JSON usage event: typed decoding with msgspec, in one C call.

``parse_event_json(value)`` returns the :class:`~schemas.event.UsageEvent` that
``parse_event(orjson.loads(value))`` returns, or ``None`` when the message is not the usual,
valid shape. ``None`` never means "invalid": it means "take the general path", which decides
with its exact error codes. So the fast path only needs to be right when it answers, and the
property test (``tests/unit/test_event_json.py``) checks exactly that against the general path.

Where msgspec and orjson read JSON differently, the fast path answers ``None``:

* integers outside the int64 range: orjson reads those beyond 64 bits as floats, msgspec as
  ints (the ``_Int64`` bound sends them all to the general path);
* anything msgspec rejects (a wrong type, a nested property, ``1e400``, malformed JSON, a
  recursion limit): the general path gives the error code.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas.errors import InvalidField
from schemas.event import MAX_TRANSACTION_ID_LENGTH, UsageEvent
from schemas.numbers import to_decimal
from schemas.timestamps import parse_timestamp_ms

__all__ = ["parse_event_json"]

# orjson reads integers beyond 64 bits as floats; msgspec bounds fit in an int64, so the
# uint64-only range also takes the general path.
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Scalar = str | _Int64 | float | bool | None


class _UsualEvent(msgspec.Struct):
    """The usual event's shape; unknown fields are skipped, as ``parse_event`` ignores them."""

    transaction_id: str
    external_subscription_id: str
    code: str
    organization_id: str
    timestamp: _Int64 | float | str | None = None
    properties: dict[str, _Scalar] | None = None
    precise_total_amount_cents: str | _Int64 | float | None = None


_decode = msgspec.json.Decoder(_UsualEvent).decode


def parse_event_json(value: bytes, *, now_ms: int) -> UsageEvent | None:
    """The event of a usual, valid JSON message; ``None`` sends it to the general path.

    ``now_ms`` is the ingestion time used when ``timestamp`` is missing or null.
    """
    try:
        obj = _decode(value)
    except Exception:  # any doubt (malformed, wrong type, recursion): the general path decides
        return None
    transaction_id = obj.transaction_id
    subscription = obj.external_subscription_id
    code = obj.code
    organization_id = obj.organization_id
    if not (
        transaction_id and subscription and code and organization_id
        and len(transaction_id) <= MAX_TRANSACTION_ID_LENGTH
        and not transaction_id.isspace() and not subscription.isspace()
        and not code.isspace() and not organization_id.isspace()
    ):
        return None
    try:
        timestamp_ms = parse_timestamp_ms(obj.timestamp, now_ms=now_ms)
    except InvalidField:
        return None
    amount = obj.precise_total_amount_cents
    if amount is not None:
        amount = to_decimal(amount)
        if amount is None:
            return None
    properties = obj.properties
    return UsageEvent(
        organization_id, subscription, code, transaction_id, timestamp_ms,
        {} if properties is None else properties, amount,
    )
