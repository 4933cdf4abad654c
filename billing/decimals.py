"""Decimal helpers shared by the billing core: one wide context and one strict parser."""

from __future__ import annotations

import decimal
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any

#: Arithmetic context for billing: 100 significant digits so Decimal(38,12) usage times a price
#: never rounds silently; invalid operations raise instead of producing NaN.
CONTEXT = Context(
    prec=100,
    rounding=decimal.ROUND_HALF_EVEN,
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
