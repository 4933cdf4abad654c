"""Tiered ranges shared by graduated, graduated_percentage and volume (SPEC §6).

Lago: app/services/charge_models/graduated_service.rb (with
amount_details/range_graduated_service.rb), graduated_percentage_service.rb (with
amount_details/range_graduated_percentage_service.rb) and volume_service.rb.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

from billing.decimals import to_decimal


@dataclass(frozen=True, slots=True)
class Range:
    """One tier: ``[from_value, to_value]``, ``to_value`` None meaning infinity."""

    from_value: Decimal
    to_value: Decimal | None
    raw: Mapping[str, Any]


def parse_ranges(raw_ranges: Any) -> list[Range]:
    """Parse a list of range mappings; raises ``ValueError`` when bounds are not numbers."""
    if not isinstance(raw_ranges, Sequence) or isinstance(raw_ranges, str) or not raw_ranges:
        raise ValueError("ranges must be a non-empty list")
    parsed = []
    for raw in raw_ranges:
        if not isinstance(raw, Mapping):
            raise ValueError("each range must be an object")
        to_raw = raw.get("to_value")
        parsed.append(
            Range(
                from_value=to_decimal(raw.get("from_value")),
                to_value=None if to_raw is None else to_decimal(to_raw),
                raw=raw,
            )
        )
    return parsed


def all_adjacent(ranges: Sequence[Range]) -> bool:
    """Lago's ``GraduatedService#adjacent_ranges?``: at least two ranges, and every one starts
    where the previous one ends (``next.from == prev.to``). One mixed pair makes it False."""
    return len(ranges) >= 2 and all(
        nxt.from_value == prev.to_value for prev, nxt in pairwise(ranges)
    )


def _walk(ranges: Sequence[Range], units: Decimal) -> list[Range]:
    """Tiers in order up to the first with ``to`` null or ``units <= to`` (always >= 1 tier)."""
    walked = []
    for tier in ranges:
        walked.append(tier)
        if tier.to_value is None or units <= tier.to_value:
            break
    return walked


def graduated_tiers(ranges: Sequence[Range], units: Decimal) -> list[tuple[Range, Decimal]]:
    """Walk tiers in order up to the one holding ``units``; return (tier, units billed in it).

    Lago's RangeGraduatedService#units: ``top = min(units, to)``; from_value 0 -> top; when all
    ranges are adjacent (:func:`all_adjacent`) -> top - from; otherwise (integer style, or mixed
    styles) -> top - from + 1. So ``0-0.01, 0.01-10, 11-∞`` (mixed) bills 10 - 0.01 + 1 = 10.99
    units in its second tier. The walk always holds the first tier, whose flat fee is then due
    even at 0 units.
    """
    adjacent = all_adjacent(ranges)
    tiers: list[tuple[Range, Decimal]] = []
    for tier in _walk(ranges, units):
        top = units if tier.to_value is None else min(units, tier.to_value)
        if tier.from_value == 0:
            tier_units = top
        elif adjacent:
            tier_units = top - tier.from_value
        else:
            tier_units = top - tier.from_value + 1
        tiers.append((tier, tier_units))
    return tiers


def graduated_percentage_tiers(
    ranges: Sequence[Range], units: Decimal
) -> list[tuple[Range, Decimal]]:
    """The same walk with Lago's RangeGraduatedPercentageService#units, which has no adjacent
    model: from_value 0 -> min(units, to); otherwise min(units, to) - from + 1, whatever the
    bounds' style (so ``0-1000, 1000-∞`` bills 1500 - 1000 + 1 = 501 units in tier 2).
    """
    tiers: list[tuple[Range, Decimal]] = []
    for tier in _walk(ranges, units):
        top = units if tier.to_value is None else min(units, tier.to_value)
        tier_units = top if tier.from_value == 0 else top - tier.from_value + 1
        tiers.append((tier, tier_units))
    return tiers


def volume_range(ranges: Sequence[Range], units: Decimal) -> Range:
    """Lago's VolumeService#matching_range: by ascending ``from_value``, the first range with
    ``from <= ceil(units)`` and (``to`` null or ``units <= to``). 0 units selects the first
    range (from 0), whose flat_amount is then due.

    Where Lago finds none (units below the first range, e.g. negative ones, or between a
    decimal ``to_value`` and a ``from_value`` one above it) Lago fails; here the first range
    with ``units <= to`` holds them (else the last), so pricing never raises.
    """
    ordered = sorted(ranges, key=lambda r: r.from_value)
    ceiling = math.ceil(units)
    for tier in ordered:
        if tier.from_value <= ceiling and (tier.to_value is None or units <= tier.to_value):
            return tier
    for tier in ordered:
        if tier.to_value is None or units <= tier.to_value:
            return tier
    return ordered[-1]
