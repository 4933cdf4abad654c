"""The ``percentage`` charge model (Lago's percentage_service.rb, made consistent)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from billing.decimals import ZERO, to_decimal
from billing.usage import ChargeUsage

HUNDRED = Decimal(100)


def _optional_decimal(properties: Mapping[str, Any], key: str) -> Decimal | None:
    value = properties.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_decimal(value)


def paid_values(
    values: Sequence[Decimal], free_events: int, free_total: Decimal | None
) -> list[Decimal | None]:
    """Per event, in order: the part of its value still to pay, or None when it is fully free.

    - ``free_events`` N > 0 only: the first N events are free.
    - ``free_total`` T only: events are free while the running total stays below T; the event that
      reaches or crosses T pays only its part above T (Lago: ``remaining > value`` is free).
    - both: only the first N events may use free units, and together at most T of them -- the
      setting that leaves fewer free units wins. Lago does this on its aggregate path; its
      per-transaction (min/max) path ignores N once T is set. We use this one rule for both.
    """
    remaining = free_total if free_total is not None and free_total > 0 else None
    result: list[Decimal | None] = []
    for index, value in enumerate(values):
        if free_events > 0 and index >= free_events:
            result.append(value)
        elif remaining is None:
            result.append(None if free_events > 0 else value)
        elif remaining <= 0:
            result.append(value)
        elif remaining > value:
            remaining -= value
            result.append(None)
        else:
            result.append(value - remaining)
            remaining = ZERO
    return result


def percentage_amount(properties: Mapping[str, Any], usage: ChargeUsage) -> Decimal:
    """rate % of (units - free units) + fixed_amount per paid event.

    Free units come from ``usage.event_values`` (see :func:`paid_values`); a fully free event
    pays no fixed_amount, a partly free one does. With per_transaction_min/max each event is
    priced on its own (paid value x rate / 100 + fixed_amount) and clamped; free events cost 0.
    """
    rate = to_decimal(properties.get("rate"))
    fixed = _optional_decimal(properties, "fixed_amount") or ZERO
    free_events = int(properties.get("free_units_per_events") or 0)
    free_total = _optional_decimal(properties, "free_units_per_total_aggregation")
    low = _optional_decimal(properties, "per_transaction_min_amount")
    high = _optional_decimal(properties, "per_transaction_max_amount")
    paid = paid_values(usage.event_values, free_events, free_total)

    if low is not None or high is not None:
        total = ZERO
        for value in paid:
            if value is None:
                continue
            amount = value * rate / HUNDRED + fixed
            if low is not None and amount < low:
                amount = low
            elif high is not None and amount > high:
                amount = high
            total += amount
        return total

    free_value = sum(
        (v if p is None else v - p for v, p in zip(usage.event_values, paid, strict=True)), ZERO
    )
    free_count = sum(1 for p in paid if p is None)
    percent = ZERO if free_value > usage.units else (usage.units - free_value) * rate / HUNDRED
    if usage.units == 0 or free_count >= usage.events_count:
        return percent
    return percent + (usage.events_count - free_count) * fixed
