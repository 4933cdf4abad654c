"""Event timestamps (SPEC §1): Unix seconds or RFC 3339 → integer milliseconds since the epoch.

Decisions where the SPEC is silent:

* Sub-millisecond digits are truncated (floor), never rounded up, so an event can never move
  into the next millisecond (or the next billing period): ``1700000000.1239`` → ``…123``.
  Numbers are read from their exact decimal digits (a float via its shortest ``repr``), so
  ``1700000000.123`` gives ``…123``, not the ``…122`` that ``int(x * 1000)`` would give.
* Numeric strings follow :mod:`schemas.numbers` (no surrounding whitespace, no ``_``).
* RFC 3339 strings must carry a time **and** an offset (``Z``/``z`` or ``±HH:MM``); the date/time
  separator may be ``T``, ``t`` or a space; any number of fractional-second digits. Naive
  date-times (no offset) and bare dates are REJECTED rather than guessed to be UTC: a silent
  guess could shift usage by hours across a billing boundary. Other ISO 8601 spellings
  (``20261121T100000Z``, ``+0200``, ``,5``) are rejected too.
* The accepted range is ``[1970-01-01T00:00:00Z, 2100-01-01T00:00:00Z)``
  (:data:`schemas.bounds.MIN_INSTANT_MS`, :data:`schemas.bounds.MAX_INSTANT_MS`): the roll-up
  buckets are 32-bit ``DateTime`` and would wrap beyond it. A well-formed timestamp outside it
  (``-1``, ``1e20``, ``"2100-01-01T00:00:00Z"``, ``"1969-12-31T23:59:59Z"``) is
  ``value_is_out_of_range``; a malformed one is ``invalid_format``.
* Numbers are exact: a ``Decimal`` (what :mod:`schemas.exact_json` reads a JSON number with a
  fraction as) is floored to the millisecond from all of its digits.
* Empty strings are invalid (only a missing/``null`` timestamp means "now").
"""

from __future__ import annotations

import decimal
import math
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal

from schemas.bounds import MAX_INSTANT_MS, MIN_INSTANT_MS, VALUE_IS_OUT_OF_RANGE
from schemas.errors import INVALID_FORMAT, INVALID_TYPE, InvalidField
from schemas.numbers import to_decimal

__all__ = ["MAX_TIMESTAMP_MS", "format_timestamp_seconds", "parse_timestamp_ms"]

#: 2099-12-31T23:59:59.999Z, the last accepted instant (``schemas.bounds.MAX_INSTANT_MS - 1``).
MAX_TIMESTAMP_MS = MAX_INSTANT_MS - 1

_FIELD = "timestamp"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Explicit context, immune to the thread's, and wide enough that ``scaleb`` never rounds.
_EXACT = Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_MAX_SECONDS_FLOAT = float(MAX_INSTANT_MS // 1000)
#: What the helpers below return for a well-formed number or date outside the range.
_OUT_OF_RANGE = -1


def _invalid(value: object, code: str = INVALID_FORMAT) -> InvalidField:
    return InvalidField(_FIELD, code, f"timestamp: {code}: {value!r:.80}")


def _plain_seconds_to_ms(s: str) -> int | None:
    """Fast path for ``"1700000000"`` / ``"1700000000.123"``; None when not of that form."""
    int_part, _, frac = s.partition(".")
    if not (0 < len(int_part) <= 12 and int_part.isdigit() and int_part.isascii()):
        return None
    ms = int(int_part) * 1000
    if frac:
        if not (frac.isdigit() and frac.isascii()):
            return None
        ms += int(frac[:3].ljust(3, "0"))
    return ms


def _decimal_seconds_to_ms(d: Decimal | None) -> int | None:
    """floor(``d`` × 1000) from all of its digits; None unless finite; ``_OUT_OF_RANGE`` when
    negative or too large to compute cheaply (the caller checks the exact range)."""
    if d is None or not d.is_finite():
        return None
    if d.is_signed():  # negative, or -0
        return 0 if d.is_zero() else _OUT_OF_RANGE
    if d.adjusted() >= 10:  # ≥ 10**10 s, beyond the range whatever its digits
        return _OUT_OF_RANGE
    return int(d.scaleb(3, _EXACT))  # exact; int() truncates, which is floor when d ≥ 0


def _float_seconds_to_ms(x: float) -> int | None:
    """Floor of (shortest-repr decimal of ``x``) × 1000, mostly without building a Decimal.

    In range (x < 2**32), ulp(x) ≤ 2**-20 s and ulp(x*1000) ≤ 2**-10 ms, so ``y = x * 1000``
    is within 0.002 ms of the exact repr value: (1) if ``x`` is the float of a whole number of
    ms, that number is ``round(y)`` and it is the only 3-decimal value mapping to ``x``; (2) if
    ``y`` is not within 0.05 of an integer, ``floor(y)`` is exact; (3) otherwise take the exact
    path.
    """
    if not 0.0 <= x < _MAX_SECONDS_FLOAT:
        return None if math.isnan(x) or math.isinf(x) else _OUT_OF_RANGE
    y = x * 1000.0
    c = round(y)
    if c / 1000.0 == x:
        return c
    f = math.floor(y)
    if 0.05 < y - f < 0.95:
        return f
    return _decimal_seconds_to_ms(to_decimal(x))


def _rfc3339_to_ms(s: str) -> int | None:
    n = len(s)
    if (
        n < 20
        or s[4] != "-"
        or s[7] != "-"
        or s[10] not in "Tt "
        or s[13] != ":"
        or s[16] != ":"
        or not s.isascii()
    ):
        return None
    if s[-1] in "Zz":
        end = n - 1
    elif n >= 25 and s[-6] in "+-" and s[-3] == ":":
        end = n - 6
    else:
        return None  # no offset: naive date-times are rejected
    if end != 19:  # fractional seconds: ".d+", truncated to milliseconds
        if s[19] != "." or end == 20 or not s[20:end].isdigit():
            return None
        if end > 23:
            s = s[:23] + s[end:]
    try:
        dt = datetime.fromisoformat(s.upper())
    except ValueError:
        return None
    try:
        return (dt - _EPOCH) // _ONE_MS
    except OverflowError:
        return _OUT_OF_RANGE


def _str_to_ms(s: str) -> int | None:
    ms = _plain_seconds_to_ms(s)
    if ms is not None:
        return ms
    if len(s) >= 20 and s[4:5] == "-":
        return _rfc3339_to_ms(s)
    return _decimal_seconds_to_ms(to_decimal(s))


def parse_timestamp_ms(value: object, *, now_ms: int) -> int:
    """Event timestamp → milliseconds since the Unix epoch (UTC).

    ``None`` (missing) → ``now_ms``. int/float/Decimal or numeric string: Unix seconds, the
    fraction truncated (floor) to the millisecond. RFC 3339 string with an offset → its UTC
    instant, truncated to the millisecond; naive or date-only strings are rejected.
    Raises :class:`InvalidField` (field ``"timestamp"``): code ``invalid_type`` for bool, list,
    dict and other non-str/non-number types, ``value_is_out_of_range`` for a well-formed instant
    outside ``[1970-01-01, 2100-01-01)`` (:mod:`schemas.bounds`), ``invalid_format`` for
    anything else (NaN, ±inf, empty string, garbage, naive date-times).
    """
    if value is None:
        return now_ms
    ms: int | None
    if type(value) is Decimal:  # a JSON number with a fraction (schemas.exact_json): the usual
        ms = _decimal_seconds_to_ms(value)
    elif type(value) is int:  # the exact types first (cheap), then subclasses; bool before int
        ms = value * 1000
    elif type(value) is str:
        ms = _str_to_ms(value)
    elif type(value) is float:
        ms = _float_seconds_to_ms(value)
    elif isinstance(value, str):
        ms = _str_to_ms(value)
    elif isinstance(value, bool):
        raise _invalid(value, INVALID_TYPE)
    elif isinstance(value, int):
        ms = value * 1000
    elif isinstance(value, float):
        ms = _float_seconds_to_ms(value)
    elif isinstance(value, Decimal):
        ms = _decimal_seconds_to_ms(value)
    else:
        raise _invalid(value, INVALID_TYPE)
    if ms is None:
        raise _invalid(value)
    if not MIN_INSTANT_MS <= ms < MAX_INSTANT_MS:
        raise _invalid(value, VALUE_IS_OUT_OF_RANGE)
    return ms


def format_timestamp_seconds(ms: int) -> str:
    """Milliseconds → lossless Unix-seconds string with exactly 3 decimals: ``"1700000000.123"``."""
    seconds, millis = divmod(ms, 1000)
    return f"{seconds}.{millis:03d}"
