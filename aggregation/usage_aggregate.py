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
