"""The one definition of SPEC §1's canonical number → string rule.

* integers print without a fraction (``1``, never ``1.0``);
* decimals print in plain notation without trailing zeros (``1.5``, ``1000000``, never ``1e+06``);
* booleans print as ``true`` / ``false``;
* a *numeric string* is a number: ``"1.50"`` → ``"1.5"``, ``"1e6"`` → ``"1000000"``,
  ``"010"`` → ``"10"``, ``"+2"`` → ``"2"``, ``"-0"`` → ``"0"``; any other string is kept as is.

A numeric string is an ASCII decimal literal: optional sign, digits with an optional ``.``
fraction (``".5"`` and ``"5."`` are accepted), optional ``e``/``E`` exponent. Surrounding
whitespace, ``_`` separators, non-ASCII digits, ``NaN``/``Infinity`` and hex are NOT numeric
(such strings stay strings). Numbers whose plain form would be absurdly long (decimal exponent
beyond ±``MAX_EXPONENT``) are not numeric either, so ``"1e999999999"`` cannot blow up memory.

Hot path: ints, floats with a plain ``repr`` and plain digit strings never build a ``Decimal``.
"""

from __future__ import annotations

import math
from decimal import Context, Decimal, InvalidOperation

__all__ = [
    "MAX_EXPONENT",
    "canonical_string",
    "decimal_to_string",
    "is_numeric_string",
    "plain_decimal",
    "to_decimal",
]

#: Largest accepted |decimal exponent| of a number; every finite float (1.8e308, 5e-324) fits.
MAX_EXPONENT = 1000

_NUM_START = frozenset("+-.0123456789")
_NUM_CHARS = "0123456789+-.eE"
_ZERO = Decimal(0)
_ONE = Decimal(1)
_INT_LIMIT = 10 ** (MAX_EXPONENT + 1)
# Large enough that normalize/quantize are exact for every in-range Decimal.
_CTX = Context(prec=4 * MAX_EXPONENT, Emax=4 * MAX_EXPONENT, Emin=-4 * MAX_EXPONENT)


def _in_range(d: Decimal) -> bool:
    """Finite, and its plain form has a bounded length."""
    if not d.is_finite():
        return False
    if d.is_zero():
        return True
    exp = d.as_tuple().exponent
    return isinstance(exp, int) and exp >= -MAX_EXPONENT and d.adjusted() <= MAX_EXPONENT


def _parse_decimal_str(s: str) -> Decimal | None:
    """A numeric string (see module doc) as a finite, in-range Decimal; else None."""
    # Cheap rejections first: most non-numeric strings fail on their first character.
    if not s or s[0] not in _NUM_START or s.strip(_NUM_CHARS) or not s.isascii():
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return d if _in_range(d) else None


def _normalize(d: Decimal) -> Decimal:
    """Equal values → identical Decimal: no trailing fractional zeros, exponent ≤ 0, no -0."""
    if d.is_zero():
        return _ZERO
    n = d.normalize(_CTX)
    exp = n.as_tuple().exponent
    if isinstance(exp, int) and exp > 0:
        n = n.quantize(_ONE, context=_CTX)
    return n


def decimal_to_string(d: Decimal) -> str:
    """Plain notation, no trailing zeros, ``-0`` → ``"0"``; ValueError if ``d`` is not finite."""
    if not d.is_finite():
        raise ValueError(f"not a finite decimal: {d!r}")
    if d.is_zero():
        return "0"
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _int_to_string(x: int) -> str:
    try:
        return str(x)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return format(Decimal(x), "f")


def _float_to_string(x: float) -> str | None:
    r = repr(x)
    if r.endswith(".0"):  # integral: "1.0" → "1", "-0.0" → "0"
        r = r[:-2]
        return "0" if r == "-0" else r
    if "e" in r:  # "1e+16", "1e-07": exact shortest-repr digits in plain notation
        return decimal_to_string(Decimal(r))
    if r[-1].isdigit():  # "1.5": repr is already the shortest plain form
        return r
    return None  # nan, inf, -inf


def _digits_to_string(sign: str, digits: str) -> str:
    digits = digits.lstrip("0")
    return sign + digits if digits else "0"


def _str_to_string(s: str) -> str:
    if s.isdigit() and s.isascii():  # fast path: "10"; "007" → "7"
        return s if s[0] != "0" or len(s) == 1 else _digits_to_string("", s)
    if s[:1] == "-" and s[1:].isdigit() and s.isascii():  # fast path: "-3"
        return _digits_to_string("-", s[1:])
    d = _parse_decimal_str(s)
    return s if d is None else decimal_to_string(d)


def canonical_string(value: object) -> str | None:
    """Canonical string of a property value (SPEC §1), used for value, filters and grouped_by.

    bool → ``"true"``/``"false"``; int/float/Decimal → plain number string; numeric str → its
    canonical number string; any other str → unchanged. None, NaN/±inf, out-of-range Decimals
    and unsupported types (list, dict, …) → None.
    """
    if isinstance(value, str):
        return _str_to_string(value)
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return _int_to_string(value)
    if isinstance(value, float):
        return _float_to_string(value)
    if isinstance(value, Decimal):
        return decimal_to_string(value) if _in_range(value) else None
    return None


def to_decimal(value: object) -> Decimal | None:
    """Exact, normalized Decimal of a numeric value (int, float, numeric str, Decimal).

    Normalized: no trailing fractional zeros and exponent ≤ 0 (``"1.50"`` → ``Decimal("1.5")``,
    ``"1e6"`` → ``Decimal("1000000")``, ``-0`` → ``Decimal("0")``). Floats keep their shortest
    ``repr`` digits (``0.1`` → ``Decimal("0.1")``). bool, None, NaN/±inf, non-numeric strings,
    numbers beyond ±``MAX_EXPONENT`` and other types → None.
    """
    if isinstance(value, str):
        if value.isdigit() and value.isascii() and len(value) <= MAX_EXPONENT:
            return Decimal(value)  # fast path; leading zeros are harmless here
        d = _parse_decimal_str(value)
        return None if d is None else _normalize(d)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if -_INT_LIMIT < value < _INT_LIMIT else None
    if isinstance(value, float):
        return _normalize(Decimal(repr(value))) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return _normalize(value) if _in_range(value) else None
    return None


_PLAIN_MAX_DIGITS = 40  # longer plain strings take the general path


def plain_decimal(s: str) -> tuple[str, Decimal] | None:
    """``(canonical_string(s), to_decimal(s))`` for an unsigned plain decimal string such as
    ``"012.340"`` (digits, optionally ``.`` and more digits, at most 40 each); None for any
    other string (use the general functions then).

    The hot path's shortcut for string-valued metrics: one split and one ``Decimal`` instead
    of a full parse for each of the two answers.
    """
    whole, dot, fraction = s.partition(".")
    if not (
        whole.isdigit() and whole.isascii() and len(whole) <= _PLAIN_MAX_DIGITS
        and (not dot or (
            fraction.isdigit() and fraction.isascii() and len(fraction) <= _PLAIN_MAX_DIGITS
        ))
    ):
        return None
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    text = f"{whole}.{fraction}" if fraction else whole
    return text, Decimal(text)


def is_numeric_string(s: str) -> bool:
    """True when ``s`` is a numeric string in the sense of the module doc."""
    if s.isdigit() and s.isascii() and len(s) <= MAX_EXPONENT:
        return True
    return _parse_decimal_str(s) is not None
