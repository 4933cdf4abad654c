"""Charge ``min_amount_cents`` true-up, prorated by days (SPEC §7)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

from billing.decimals import CONTEXT, ZERO
from billing.periods import period_days


def prorate_min_amount(
    min_amount_cents: int,
    period_from: datetime,
    period_to_exclusive: datetime,
    full_period_from: datetime,
    full_period_to_exclusive: datetime,
    *,
    timezone: str = "UTC",
) -> Decimal:
    """``min_amount_cents`` x days(period) / days(full period), days counted in ``timezone``.

    Unrounded; a period as long as the full one returns ``min_amount_cents`` unchanged.
    """
    full_days = period_days(full_period_from, full_period_to_exclusive, timezone)
    if min_amount_cents <= 0 or full_days == 0:
        return ZERO
    days = min(period_days(period_from, period_to_exclusive, timezone), full_days)
    with localcontext(CONTEXT):
        return Decimal(min_amount_cents) * days / full_days


def min_amount_true_up_cents(
    total_amount_cents: int, min_amount_cents: int, prorated_min: Decimal
) -> int:
    """Cents to add so the charge reaches its (prorated) minimum: max(round_half_up(prorated_min)
    - total, 0). Returns 0 when the charge has no minimum (``min_amount_cents <= 0``)."""
    if min_amount_cents <= 0:
        return 0
    with localcontext(CONTEXT):
        minimum = int(prorated_min.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return max(minimum - total_amount_cents, 0)
