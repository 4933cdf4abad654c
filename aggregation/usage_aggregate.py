"""Usage of one (charge, filter bucket, group) over a window, as read from the pre-aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from schemas.kinds import AggregationType

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class UsageAggregate:
    """Pre-aggregated usage of one (charge, filter, group) over a time window."""

    charge_id: str
    charge_filter_id: str
    grouped_by: tuple[tuple[str, str], ...]
    aggregation_type: AggregationType
    events_count: int
    value_sum: Decimal
    value_max: Decimal | None
    latest_value: Decimal | None
    precise_total_amount_cents: Decimal
    value_time_sum: Decimal = ZERO  # Σ value × timestamp (seconds), for weighted_sum


def units_of(aggregate: UsageAggregate) -> Decimal:
    """SPEC §5 units before rounding: count, sum, max (0 if none), latest (negatives -> 0)."""
    agg = aggregate.aggregation_type
    if agg == "count_agg":
        return Decimal(aggregate.events_count)
    if agg == "sum_agg":
        return aggregate.value_sum
    if agg == "max_agg":
        return aggregate.value_max if aggregate.value_max is not None else ZERO
    if agg == "latest_agg":
        latest = aggregate.latest_value
        return latest if latest is not None and latest > 0 else ZERO
    raise NotImplementedError(f"aggregation type {agg} is not supported yet")
