"""A fast path for the usual JSON usage event: typed decoding with msgspec, in one C call.

``parse_event_json(value)`` returns the :class:`~schemas.event.UsageEvent` that
``parse_event(exact_json.loads(value))`` returns, or ``None`` when the message is not the usual,
valid shape. ``None`` never means "invalid": it means "take the general path", which decides
with its exact error codes. So the fast path only needs to be right when it answers, and the
property test (``tests/unit/test_event_json.py``) checks exactly that against the general path.

Numbers are read as :mod:`schemas.exact_json` reads them (the same ``float_hook``): integers
as ``int`` of any size, any other number as an exact ``Decimal``. Every value of the message is
decoded, none skipped: a message with a field ``parse_event`` ignores takes the general path
(msgspec would skip that field unread, so a number there that ``exact_json`` cannot hold, e.g.
``1e999999999999999999999`` or a 5,000-digit integer, would be accepted here and refused there).
Everything the general path bounds is bounded here too, or sent to it: the event's size
(:data:`MAX_EVENT_BYTES`), the identifiers' lengths, the timestamp's range and
``precise_total_amount_cents`` (:func:`~schemas.bounds.decimal_fits`). Anything msgspec rejects
(a wrong type, malformed JSON, a recursion limit, an unreadable number) takes the general path,
which gives the error code.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Annotated, Any

import msgspec

from schemas.bounds import MAX_EVENT_BYTES, MAX_ID_LENGTH, MAX_INSTANT_MS, decimal_fits
from schemas.errors import InvalidField
from schemas.event import MAX_TRANSACTION_ID_LENGTH, UsageEvent
from schemas.numbers import to_decimal
from schemas.timestamps import parse_timestamp_ms

__all__ = ["parse_event_json"]


_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
_TransactionId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TRANSACTION_ID_LENGTH)]


class _UsualEvent(msgspec.Struct, forbid_unknown_fields=True):
    """The usual event's shape; any other field sends the message to the general path.

    Identifier lengths are checked by msgspec (in characters, as ``len``). ``timestamp`` and
    ``precise_total_amount_cents`` are ``Any``, so that the ``float_hook`` makes a fractional
    number an exact ``Decimal`` (a typed ``float`` would not).
    """

    transaction_id: _TransactionId
    external_subscription_id: _Id
    code: _Id
    organization_id: _Id
    timestamp: Any = None
    properties: dict[str, str | int | bool | None] | None = None
    precise_total_amount_cents: Any = None


class _EventWithNumbers(_UsualEvent):
    """Properties may hold fractional numbers (exact ``Decimal``s): their types are checked
    after decoding, since a union with ``Any`` is ``Any``."""

    properties: dict[str, Any] | None = None


_decode = msgspec.json.Decoder(_UsualEvent, float_hook=Decimal).decode
_decode_with_numbers = msgspec.json.Decoder(_EventWithNumbers, float_hook=Decimal).decode
# What ``parse_event`` accepts as a property value, as decoded here (never NaN or ±inf).
_SCALARS = frozenset((str, int, bool, type(None), Decimal))
_new_event = tuple.__new__
# Wide enough that ``scaleb`` never rounds, whatever the thread's context.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)

#: Which decoder to try first, a hint with no effect on any answer (both decoders give the
#: same event for a message both accept). ``_UsualEvent``'s typed properties cost nothing
#: extra but fail, at ~1 µs, on a property with a fraction; ``_EventWithNumbers`` takes it but
#: costs a type check per property. So after a message with a fractional property, the next
#: ones go straight to ``_EventWithNumbers`` until ``PLAIN_STREAK`` in a row had none.
PLAIN_STREAK = 64
_plain_streak = PLAIN_STREAK  # messages in a row without a fractional property (capped)


def _decode_usual(value: bytes) -> _UsualEvent | None:
    """The decoded message, or None for the general path (see ``PLAIN_STREAK``)."""
    global _plain_streak
    if _plain_streak >= PLAIN_STREAK:
        try:
            return _decode(value)
        except msgspec.ValidationError as exc:  # e.g. a property with a fraction
            if "unknown field" in str(exc):
                return None
        except Exception:  # any doubt (malformed, recursion, huge exponent): the general path
            return None
    try:
        obj = _decode_with_numbers(value)
    except Exception:
        return None
    numbers = False
    if obj.properties:
        for v in obj.properties.values():
            t = type(v)
            if t is Decimal:
                numbers = True
            elif t not in _SCALARS:  # a nested object or list: the general path
                return None
    if numbers:
        _plain_streak = 0
    elif _plain_streak < PLAIN_STREAK:
        _plain_streak += 1
    return obj


def parse_event_json(value: bytes, *, now_ms: int) -> UsageEvent | None:
    """The event of a usual, valid JSON message; ``None`` sends it to the general path.

    ``now_ms`` is the ingestion time used when ``timestamp`` is missing or null.
    """
    if len(value) > MAX_EVENT_BYTES:
        return None
    obj = _decode_usual(value)
    if obj is None:
        return None
    transaction_id = obj.transaction_id
    subscription = obj.external_subscription_id
    code = obj.code
    organization_id = obj.organization_id
    if (
        transaction_id.isspace() or subscription.isspace() or code.isspace()
        or organization_id.isspace()
    ):
        return None
    ts = obj.timestamp
    if type(ts) is Decimal and not ts.is_signed() and ts.adjusted() < 10:
        # Unix seconds with a fraction (the usual timestamp), floored to the millisecond from
        # all of its digits, as schemas.timestamps does; anything else goes there.
        timestamp_ms = int(ts.scaleb(3, _EXACT))
        if timestamp_ms >= MAX_INSTANT_MS:
            return None
    else:
        try:
            timestamp_ms = parse_timestamp_ms(ts, now_ms=now_ms)
        except InvalidField:
            return None
    amount = obj.precise_total_amount_cents
    if amount is not None:
        amount = to_decimal(amount)  # None for a bool, a list, an object
        if amount is None or not decimal_fits(amount):
            return None
    properties = obj.properties
    return _new_event(UsageEvent, (  # UsageEvent(...) without its Python-level __new__
        organization_id, subscription, code, transaction_id, timestamp_ms,
        {} if properties is None else properties, amount,
    ))
