"""Decimal helpers shared by the billing core: one wide context and one strict parser."""

from __future__ import annotations

import decimal
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any

#: Arithmetic context for billing. Usage units have at most 76 digits (aggregates of
#: Decimal(38, 12) values; weighted sums keep 20 decimals) and every accepted price (or
#: rate / 100) is below 10**19 (see :mod:`billing.validation`), so products, tier sums and
#: quantizes to a currency's cents or to a rounding precision in
#: ``schemas.catalog.ROUNDING_PRECISION_RANGE`` fit in 200 digits: they are exact unless a
#: price itself has more than ~120 significant digits, and the exponent range (the widest
#: Python allows) cannot overflow. Invalid operations and divisions by zero (bugs, not inputs)
#: still raise.
CONTEXT = Context(
    prec=200,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)

ZERO = Decimal(0)


def to_decimal(value: Any) -> Decimal:
    """Parse a price, bound or usage value (str, int, float or Decimal) into a finite Decimal.

    Floats go through ``str`` first so ``0.1`` stays ``0.1``. Booleans, None, blank or
    non-numeric strings and non-finite numbers raise ``ValueError``.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, (float, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"not a number: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result
