"""Charge models of SPEC §6: units -> amount in currency units (unrounded Decimal).

:data:`PRICING_FUNCTIONS` holds one pricing function per :class:`schemas.kinds.ChargeModel`
(the properties each one reads are checked by :data:`billing.validation.VALIDATORS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal, localcontext
from typing import Any

from billing.currency import subunit
from billing.decimals import CONTEXT, ZERO, to_decimal
from billing.percentage import percentage_amount
from billing.ranges import (
    graduated_percentage_tiers,
    graduated_tiers,
    parse_ranges,
    volume_range,
)
from billing.usage import ChargeUsage
from billing.validation import validate_charge_properties
from schemas.kinds import ChargeModel

__all__ = [
    "PRICING_FUNCTIONS",
    "ChargeUsage",
    "PricingFunction",
    "compute_amount",
    "validate_charge_properties",
]

HUNDRED = Decimal(100)

#: A charge model's pricing: (the bucket's properties, its usage) -> amount in currency units.
PricingFunction = Callable[[Mapping[str, Any], ChargeUsage], Decimal]


def standard_amount(properties: Mapping[str, Any], usage: ChargeUsage) -> Decimal:
    """units x amount (Lago: charge_models/standard_service.rb)."""
    return usage.units * to_decimal(properties.get("amount"))


def package_amount(properties: Mapping[str, Any], usage: ChargeUsage) -> Decimal:
    """ceil(max(units - free_units, 0) / package_size) x amount (a started package is due).

    Lago: charge_models/package_service.rb (negative paid units -> 0).
    """
    size = to_decimal(properties.get("package_size"))
    if size <= 0:
        raise ValueError("package_size must be positive")
    free = to_decimal(properties.get("free_units") or 0)
    billed = max(usage.units - free, ZERO)
    return math.ceil(billed / size) * to_decimal(properties.get("amount"))


def graduated_amount(properties: Mapping[str, Any], usage: ChargeUsage) -> Decimal:
    """Σ over the tiers walked: tier units x per_unit_amount + flat_amount (once per tier).

    Lago: charge_models/graduated_service.rb; tier units in :func:`billing.ranges.graduated_tiers`.
    """
    tiers = graduated_tiers(parse_ranges(properties.get("graduated_ranges")), usage.units)
    return sum(
        (
            tier_units * to_decimal(tier.raw.get("per_unit_amount"))
            + to_decimal(tier.raw.get("flat_amount"))
            for tier, tier_units in tiers
        ),
        ZERO,
    )


def graduated_percentage_amount(properties: Mapping[str, Any], usage: ChargeUsage) -> Decimal:
    """Σ over the tiers walked: tier units x rate / 100 + flat_amount (once per tier).

    Lago: charge_models/graduated_percentage_service.rb; tier units (always integer style for a
    tier not starting at 0) in :func:`billing.ranges.graduated_percentage_tiers`.
    """
    ranges = parse_ranges(properties.get("graduated_percentage_ranges"))
    return sum(
        (
            tier_units * to_decimal(tier.raw.get("rate")) / HUNDRED
            + to_decimal(tier.raw.get("flat_amount"))
            for tier, tier_units in graduated_percentage_tiers(ranges, usage.units)
        ),
        ZERO,
    )


def volume_amount(properties: Mapping[str, Any], usage: ChargeUsage) -> Decimal:
    """units x per_unit_amount + flat_amount of the one range holding units.

    Lago: charge_models/volume_service.rb (#5760): 0 units selects the first range, so its
    flat_amount is due (volume_service_spec.rb "when aggregation is 0": 10).
    """
    tier = volume_range(parse_ranges(properties.get("volume_ranges")), usage.units)
    return usage.units * to_decimal(tier.raw.get("per_unit_amount")) + to_decimal(
        tier.raw.get("flat_amount")
    )


def dynamic_amount(properties: Mapping[str, Any], usage: ChargeUsage) -> Decimal:
    """Σ precise_total_amount_cents / currency subunit (USD /100, JPY /1); 0 when the units
    (Σ of the metric's field) are 0 (Lago: charge_models/dynamic_service.rb,
    dynamic_service_spec.rb "when aggregation is zero")."""
    cents = usage.precise_total_amount_cents
    if cents is None or usage.units == 0:
        return ZERO
    return to_decimal(cents) / subunit(usage.currency)


#: Charge model -> pricing function: the one registry of pricing (one for each member).
PRICING_FUNCTIONS: dict[ChargeModel, PricingFunction] = {
    ChargeModel.STANDARD: standard_amount,
    ChargeModel.PACKAGE: package_amount,
    ChargeModel.GRADUATED: graduated_amount,
    ChargeModel.GRADUATED_PERCENTAGE: graduated_percentage_amount,
    ChargeModel.VOLUME: volume_amount,
    ChargeModel.PERCENTAGE: percentage_amount,
    ChargeModel.DYNAMIC: dynamic_amount,
}


def compute_amount(
    charge_model: ChargeModel, properties: Mapping[str, Any], usage: ChargeUsage
) -> Decimal:
    """Price ``usage`` with ``charge_model``; returns currency units (not cents), unrounded.

    Raises ``ValueError`` for an unknown model (a string that is no member) or unusable
    properties (validate them first with :func:`validate_charge_properties`).
    """
    try:
        price = PRICING_FUNCTIONS[charge_model]
    except KeyError:
        raise ValueError(f"unknown charge model: {charge_model!r}") from None
    with localcontext(CONTEXT):
        return price(properties or {}, usage)
