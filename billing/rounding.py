"""Rounding of aggregated units (billable metric ``rounding_function`` / ``rounding_precision``).

Lago: app/services/billable_metrics/aggregations/apply_rounding_service.rb -- BigDecimal
``round`` (half-up), ``ceil`` and ``floor`` at ``rounding_precision`` (nil -> 0).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from billing.decimals import CONTEXT
from schemas.catalog import ROUNDING_PRECISION_RANGE

ROUNDING_MODES = {"round": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR}


def round_units(value: Decimal, function: str | None, precision: int | None) -> Decimal:
    """Round ``value`` with ``function`` (round = half-up, ceil, floor) at ``precision`` decimals.

    ``precision`` may be negative (-2 rounds to hundreds) and defaults to 0. A ``None`` function
    returns ``value`` unchanged. An unknown function raises ``ValueError``.

    Catalog validation keeps ``precision`` within ``ROUNDING_PRECISION_RANGE``; a precision
    outside it (a catalog stored before the bound existed) is clamped to it, so rounding never
    raises: above 20 decimals nothing changes anyway.
    """
    if function is None:
        return value
    try:
        mode = ROUNDING_MODES[function]
    except KeyError:
        raise ValueError(f"unknown rounding function: {function!r}") from None
    low, high = ROUNDING_PRECISION_RANGE
    places = min(max(precision or 0, low), high)
    with localcontext(CONTEXT):
        result = value.quantize(Decimal(1).scaleb(-places), rounding=mode)
        if places < 0:
            # 1.2E+3 -> 1200: keep a plain integer representation.
            result = result.quantize(Decimal(1))
        return result
