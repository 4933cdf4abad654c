"""SPEC §5: units of one (charge, filter, group) over a period, from pre-aggregated states.

What each type reads (all for one subscription, never raw events):

- count / sum / max / latest: the period's bucket states (sum, max, arg-max by position).
- recurring sum: the period's states plus everything before the period.
- unique_count: the last operation of each value in the period (recurring: since the start).
- weighted_sum: the level is 0 (or, recurring, Σ value before the period) at ``from`` and each
  event adds its value until ``to``, so Σ level × seconds =
  initial × (to − from) + Σ v × (to − t) = initial × (to − from) + to × Σ v − Σ v × t,
  and Σ v and Σ v × t are stored per bucket. Divided by (period days × 86400), ceil at 20
  decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal, localcontext
from fractions import Fraction

from aggregation.usage_aggregate import UsageAggregate
from schemas.kinds import AggregationType

ZERO = Decimal(0)
# Wide enough that adding two stored sums (Decimal(76, 12) each) is exact.
EXACT = Context(prec=200)
Key = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Period:
    """The billed window: ``[from_ms, to_ms)`` and the number of days of the full period."""

    from_ms: int
    to_ms: int
    days: int


@dataclass(frozen=True, slots=True)
class FeeUsage:
    """Everything a charge model needs for one (charge, filter bucket, group), before rounding."""

    charge_id: str
    charge_filter_id: str
    #: a bucket that saw no event has one fee grouped by each of its keys with a None value
    grouped_by: tuple[tuple[str, str | None], ...]
    units: Decimal
    events_count: int
    event_values: tuple[Decimal, ...] = ()
    precise_total_amount_cents: Decimal = ZERO


def _seconds(ms: int) -> Decimal:
    return Decimal(ms).scaleb(-3)


def weighted_sum(
    window: UsageAggregate | None, initial_level: Decimal, period: Period
) -> Decimal:
    """Time-weighted level over the period (SPEC §5), ceil to 20 decimals."""
    with localcontext() as ctx:
        ctx.prec = 120
        start, end = _seconds(period.from_ms), _seconds(period.to_ms)
        area = initial_level * (end - start)
        if window is not None:
            area += end * window.value_sum - window.value_time_sum
        exact = Fraction(area) / (period.days * 86_400)
    # ceil at 20 decimals in integers: exact whatever the number of digits
    scaled = -(-exact.numerator * 10**20 // exact.denominator)
    return Decimal(scaled).scaleb(-20)


def units_for(
    aggregation_type: AggregationType,
    *,
    recurring: bool,
    window: UsageAggregate | None,
    before: UsageAggregate | None,
    unique_present: int | None,
    period: Period,
) -> Decimal:
    """Units of one key; ``before`` is the state before the period (recurring metrics)."""
    if aggregation_type == AggregationType.COUNT:
        return Decimal(window.events_count if window else 0)
    if aggregation_type == AggregationType.SUM:
        total = window.value_sum if window else ZERO
        if recurring and before is not None:
            total = EXACT.add(total, before.value_sum)  # never rounded to 28 digits
        return total
    if aggregation_type == AggregationType.MAX:
        return window.value_max if window and window.value_max is not None else ZERO
    if aggregation_type == AggregationType.LATEST:
        latest = window.latest_value if window else None
        return latest if latest is not None and latest > 0 else ZERO
    if aggregation_type == AggregationType.UNIQUE_COUNT:
        return Decimal(unique_present or 0)
    if aggregation_type == AggregationType.WEIGHTED_SUM:
        initial = before.value_sum if recurring and before is not None else ZERO
        return weighted_sum(window, initial, period)
    raise ValueError(f"unknown aggregation type {aggregation_type!r}")


def prorated_sum(
    carried: Decimal, daily: list[tuple[date, Decimal]], first_day: date, last_day: date,
    full_days: int,
) -> Decimal:
    """Units of a prorated recurring sum (Lago's prorated charges), unrounded.

    The level carried into the period counts for the days the subscription is in the period
    (``first_day`` .. ``last_day``); a value added on day d counts from d to ``last_day``
    inclusive. Each is divided by the full period's days.
    """
    with localcontext() as ctx:
        ctx.prec = 120
        total = carried * ((last_day - first_day).days + 1)
        for day, value in daily:
            total += value * ((last_day - day).days + 1)
        return total / full_days
