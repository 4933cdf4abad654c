"""Tiered ranges shared by graduated, graduated_percentage and volume (SPEC §6)."""

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
    """True when every range starts where the previous one ends (``next.from == prev.to``)."""
    return all(nxt.from_value == prev.to_value for prev, nxt in pairwise(ranges))


def graduated_tiers(ranges: Sequence[Range], units: Decimal) -> list[tuple[Range, Decimal]]:
    """Walk tiers in order up to the one holding ``units``; return (tier, units billed in it).

    Tier units: from_value 0 -> min(units, to); all ranges adjacent -> min(units, to) - from;
    otherwise (integer style, next from = previous to + 1) -> min(units, to) - from + 1.
    The walk stops at the first tier with ``to`` null or ``units <= to``, so it always holds
    at least the first tier (whose flat fee is then due even at 0 units).
    """
    adjacent = all_adjacent(ranges)
    tiers: list[tuple[Range, Decimal]] = []
    for tier in ranges:
        top = units if tier.to_value is None else min(units, tier.to_value)
        if tier.from_value == 0:
            tier_units = top
        elif adjacent:
            tier_units = top - tier.from_value
        else:
            tier_units = top - tier.from_value + 1
        tiers.append((tier, tier_units))
        if tier.to_value is None or units <= tier.to_value:
            break
    return tiers


def volume_range(ranges: Sequence[Range], units: Decimal) -> Range:
    """The range with ``from <= ceil(units)`` and (``to`` null or ``units <= to``).

    Ranges are tried by ascending ``from_value``; raises ``ValueError`` when none matches.
    """
    ceiling = math.ceil(units)
    for tier in sorted(ranges, key=lambda r: r.from_value):
        if tier.from_value <= ceiling and (tier.to_value is None or units <= tier.to_value):
            return tier
    raise ValueError(f"no volume range holds {units} units")
