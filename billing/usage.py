"""What a charge model is given: the usage of one fee (charge, filter bucket, group)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from schemas.kinds import AggregationType


@dataclass(frozen=True, slots=True)
class ChargeUsage:
    """Aggregated usage of one fee.

    ``units`` is already aggregated and rounded. ``event_values`` (per-event values in timestamp
    order) is only read by ``percentage`` for free units and per-transaction min/max;
    ``precise_total_amount_cents`` (Σ over the events) only by ``dynamic``, in the minor units of
    ``currency``. ``aggregation_type`` (the metric's) only by ``percentage``: Lago's running total
    of free units is per event for sums and 1, 2, … n for counts.
    """

    units: Decimal
    events_count: int
    event_values: tuple[Decimal, ...] = ()
    precise_total_amount_cents: Decimal | None = None
    currency: str = "USD"
    aggregation_type: AggregationType | None = None
