"""The ``percentage`` charge model, as Lago's app/services/charge_models/percentage_service.rb.

Free units come from a *running total* (Lago: ``aggregation_result.options[:running_total]``,
built by the aggregation services):

- ``count_agg`` / ``unique_count_agg`` (count_service.rb, unique_count_service.rb):
  1, 2, … n over all the units, whenever a free setting is set;
- other types (sum_service.rb ``running_total``): with ``free_units_per_events`` N set, the
  cumulative sums of the first N events' values -- N wins over
  ``free_units_per_total_aggregation`` T, which is then only a cap; with T only, the cumulative
  sums up to and including the first one above T.

Without per-transaction limits (``compute_percentage_amount + compute_fixed_amount``):

- free units = 0 when the last running total is 0; the N-th running total when N is below the
  running total's length (counts); else the last running total, capped at T when T is set;
- free events = the smallest non-zero of N and the number of running totals below T
  (``[N, count].excluding(0).min``);
- amount = (units - free units) x rate / 100 (0 when free units exceed the units)
  + (events - free events) x fixed_amount (0 when units are 0 or no event is paid).

With ``per_transaction_min_amount`` / ``max`` (``compute_amount_with_transaction_min_max``),
each event, in timestamp order, is priced on its own: while free events (N) or a free amount
(T) remain, the event uses one free event; with T left it also uses the free amount (fully
free while T exceeds its value, else it pays the rest and every free setting is used up);
with no T it is free. A paid event costs value x rate / 100 + fixed_amount, clamped to
[min, max]; free events cost 0. So with both settings, T keeps applying after the N free
events (Lago's spec "when both free units per events and per total aggregation are applied").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from billing.decimals import ZERO, to_decimal
from billing.usage import ChargeUsage
from schemas.kinds import AggregationType

HUNDRED = Decimal(100)


def _optional_decimal(properties: Mapping[str, Any], key: str) -> Decimal | None:
    value = properties.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_decimal(value)


class RunningTotal:
    """Lago's running total of free units (see the module docstring), for sums: the cumulative
    values themselves."""

    def __init__(self, totals: Sequence[Decimal]) -> None:
        self.totals = list(totals)

    def __len__(self) -> int:
        return len(self.totals)

    @property
    def last(self) -> Decimal:
        return self.totals[-1] if self.totals else ZERO

    def nth(self, n: int) -> Decimal:
        """The n-th total (1-based)."""
        return self.totals[n - 1]

    def count_below(self, limit: Decimal) -> int:
        return sum(1 for total in self.totals if total < limit)


class CountingTotal(RunningTotal):
    """The running total 1, 2, … n of count metrics, without building the list."""

    def __init__(self, n: int) -> None:
        self.n = max(n, 0)

    def __len__(self) -> int:
        return self.n

    @property
    def last(self) -> Decimal:
        return Decimal(self.n)

    def nth(self, n: int) -> Decimal:
        return Decimal(n)

    def count_below(self, limit: Decimal) -> int:
        # i in 1..n with i < limit
        return 0 if limit <= 1 else min(self.n, math.ceil(limit) - 1)


def running_total(usage: ChargeUsage, free_events: int, free_total: Decimal) -> RunningTotal:
    """Lago's running total of free units (see the module docstring); empty without free units."""
    if free_events == 0 and free_total == 0:
        return RunningTotal(())
    if usage.aggregation_type == AggregationType.COUNT:
        return CountingTotal(usage.events_count)
    if usage.aggregation_type == AggregationType.UNIQUE_COUNT:
        return CountingTotal(int(max(usage.units, ZERO)))
    totals: list[Decimal] = []
    total = ZERO
    if free_events > 0:  # running_total_per_events(limit: N)
        for value in usage.event_values[:free_events]:
            total += value
            totals.append(total)
        return RunningTotal(totals)
    for value in usage.event_values:  # running_total_per_aggregation(T)
        if free_total < total:
            break
        total += value
        totals.append(total)
    return RunningTotal(totals)


def free_units_value(totals: RunningTotal, free_events: int, free_total: Decimal) -> Decimal:
    """Lago's ``free_units_value``."""
    last = totals.last
    if last == 0:
        return ZERO
    if 0 < free_events < len(totals):
        return totals.nth(free_events)
    if free_total == 0 or last <= free_total:
        return last
    return free_total


def free_units_count(totals: RunningTotal, free_events: int, free_total: Decimal) -> int:
    """Lago's ``free_units_count``: ``[N, totals below T].excluding(0).min || 0``."""
    below = totals.count_below(free_total)
    return min((n for n in (free_events, below) if n != 0), default=0)


def _per_transaction(
    values: Sequence[Decimal],
    rate: Decimal,
    fixed: Decimal,
    free_events: int,
    free_total: Decimal,
    low: Decimal | None,
    high: Decimal | None,
) -> Decimal:
    """Lago's ``compute_amount_with_transaction_min_max`` (see the module docstring)."""
    remaining_events = free_events
    remaining_amount = free_total
    total = ZERO
    for event_value in values:
        value = event_value
        if remaining_events > 0 or remaining_amount > 0:
            remaining_events -= 1
            if remaining_amount <= 0:
                continue
            if remaining_amount > value:
                remaining_amount -= value
                continue
            value -= remaining_amount
            remaining_amount = ZERO
            remaining_events = 0
        amount = value * rate / HUNDRED + fixed
        if low is not None and amount < low:
            amount = low
        elif high is not None and amount > high:
            amount = high
        total += amount
    return total


def percentage_amount(properties: Mapping[str, Any], usage: ChargeUsage) -> Decimal:
    """rate % of (units - free units) + fixed_amount per paid event (see the module docstring).

    ``usage.event_values`` are the events' values in timestamp order (per-transaction limits
    and the sums' running total); ``usage.events_count`` the number of events.
    """
    rate = to_decimal(properties.get("rate"))
    fixed = _optional_decimal(properties, "fixed_amount") or ZERO
    free_events = int(properties.get("free_units_per_events") or 0)
    free_total = _optional_decimal(properties, "free_units_per_total_aggregation") or ZERO
    low = _optional_decimal(properties, "per_transaction_min_amount")
    high = _optional_decimal(properties, "per_transaction_max_amount")

    if low is not None or high is not None:
        return _per_transaction(
            usage.event_values, rate, fixed, free_events, free_total, low, high
        )

    totals = running_total(usage, free_events, free_total)
    free_value = free_units_value(totals, free_events, free_total)
    free_count = free_units_count(totals, free_events, free_total)
    percent = ZERO if free_value > usage.units else (usage.units - free_value) * rate / HUNDRED
    if usage.units == 0 or free_count >= usage.events_count:
        return percent
    return percent + (usage.events_count - free_count) * fixed
