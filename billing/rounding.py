"""Rounding of aggregated units (billable metric ``rounding_function`` / ``rounding_precision``)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from billing.decimals import CONTEXT

ROUNDING_MODES = {"round": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR}


def round_units(value: Decimal, function: str | None, precision: int | None) -> Decimal:
    """Round ``value`` with ``function`` (round = half-up, ceil, floor) at ``precision`` decimals.

    ``precision`` may be negative (-2 rounds to hundreds) and defaults to 0. A ``None`` function
    returns ``value`` unchanged. An unknown function raises ``ValueError``.
    """
    if function is None:
        return value
    try:
        mode = ROUNDING_MODES[function]
    except KeyError:
        raise ValueError(f"unknown rounding function: {function!r}") from None
    places = precision or 0
    with localcontext(CONTEXT):
        result = value.quantize(Decimal(1).scaleb(-places), rounding=mode)
        if places < 0:
            # 1.2E+3 -> 1200: keep a plain integer representation.
            result = result.quantize(Decimal(1))
        return result
