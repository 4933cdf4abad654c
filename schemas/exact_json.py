"""The one JSON reader (and writer) of request bodies and raw messages: numbers stay exact.

Money is ``Decimal`` end to end, so a number must be exact from its first byte. orjson reads
every JSON number with a fraction or an exponent, and every integer beyond 64 bits, as a float:
``12345678.123456789012`` became ``12345678.12345679`` and ``2**70`` became
``1.1805916207174113e+21``. Here:

* integers are ``int``, whatever their size (up to Python's 4300-digit ``int`` limit: a longer
  literal is malformed, as it was for orjson);
* any other number (``1.5``, ``1e3``, ``1e400``) is a ``Decimal`` holding exactly its digits;
* strings, booleans, null, arrays and objects are as usual (the last duplicate key wins).

:func:`loads` raises :class:`JSONDecodeError` (a ``ValueError``) for anything that is not one
JSON document: malformed text, invalid UTF-8, nesting deeper than the recursion limit, an
exponent beyond what ``Decimal`` can hold.

:func:`dumps` is ``orjson.dumps`` that also writes a finite ``Decimal`` as a JSON number with
every digit (``Decimal("12345678.123456789012")`` → ``12345678.123456789012``) and an integer
of any size, so what :func:`loads` read is written back with the same value and digits (one
exception of type: ``5e0`` reads as ``Decimal("5")``, which is written ``5`` and so reads back
as the ``int`` 5). Other types are orjson's.
:func:`jsonable` prepares a value for a plain ``orjson.dumps`` (Faust's JSON responses) the
same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec
import orjson

__all__ = ["JSONDecodeError", "default", "dumps", "has_wide_int", "jsonable", "loads", "texts"]


class JSONDecodeError(ValueError):
    """The input is not one well-formed JSON document."""


_decode = msgspec.json.Decoder(float_hook=Decimal).decode


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode one JSON document; numbers are ``int`` or ``Decimal``, exact."""
    try:
        return _decode(data)
    except (msgspec.MsgspecError, RecursionError, ArithmeticError, ValueError) as exc:
        # ArithmeticError: decimal.InvalidOperation of an exponent beyond Decimal's range
        raise JSONDecodeError(f"{type(exc).__name__}: {exc}") from None


def default(value: object) -> orjson.Fragment:
    """orjson's ``default=`` hook: a finite ``Decimal`` as a JSON number with every digit."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))  # "1.50", "1E+400", "-0.0": valid JSON numbers
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


_INT64_MIN = -(2**63)
_UINT64_END = 2**64


def jsonable(value: Any) -> Any:
    """``value`` with every ``Decimal`` and every integer orjson cannot write (beyond 64 bits)
    replaced by an ``orjson.Fragment`` of its digits, in nested dicts and lists too: what a
    plain ``orjson.dumps`` (Faust's JSON responses) then writes exactly."""
    t = type(value)
    if t is dict:
        return {k: jsonable(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [jsonable(v) for v in value]
    if t is int and not _INT64_MIN <= value < _UINT64_END:
        return orjson.Fragment(str(value))
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    return value


def has_wide_int(value: Any) -> bool:
    """True when ``value`` (nested dicts and lists included) holds an integer beyond 64 bits,
    which a plain ``orjson.dumps`` (Faust's JSON responses) refuses."""
    t = type(value)
    if t is int:
        return not _INT64_MIN <= value < _UINT64_END
    if t is dict:
        return any(has_wide_int(v) for v in value.values())
    if t is list:
        return any(has_wide_int(v) for v in value)
    return False


def dumps(value: Any, *, option: int | None = None) -> bytes:
    """``orjson.dumps`` with exact numbers: a ``Decimal`` with every digit, an integer of any
    size (orjson alone refuses those beyond 64 bits). Other types are orjson's."""
    kwargs = {} if option is None else {"option": option}
    try:
        return orjson.dumps(value, default=default, **kwargs)
    except TypeError:  # an integer beyond 64 bits (rare): write it from its digits
        return orjson.dumps(jsonable(value), default=default, **kwargs)


def texts(values: Iterable[Any]) -> list[str]:
    """The :func:`dumps` text of each value, in one pass of plain ``orjson.dumps`` calls (the
    hot path: one per stored event) unless one of them needs the integer fallback."""
    values = values if isinstance(values, list | tuple) else list(values)
    try:
        return [orjson.dumps(v, default=default).decode() for v in values]
    except TypeError:
        return [dumps(v).decode() for v in values]
