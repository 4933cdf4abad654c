"""Validation of charge properties with Lago's error codes (app/services/charges/validators).

Besides Lago's rules, every number is bounded so that any accepted charge can be priced for
any usage the store can hold without an error (README "Aggregation and pricing"):

- money amounts (``amount``, ``per_unit_amount``, ``flat_amount``, ``fixed_amount``,
  ``per_transaction_min_amount``/``max``) are at most what one fee's ``amount_cents`` can carry
  in the plan's currency (Lago's ``fees.amount_cents`` is a ``bigint``):
  :func:`billing.currency.max_amount`, e.g. USD 92233720368547758.07;
- rates (``rate``, in percent) are at most 100 x that amount (one unit's price);
- unit quantities (range bounds, ``free_units``, ``package_size``,
  ``free_units_per_total_aggregation``) are below 10**26, like every stored decimal
  (schemas.bounds).

A number out of these bounds gets the field's Lago code (``invalid_amount``, ``invalid_rate``,
``invalid_graduated_ranges``…), the code Lago gives a value it does not accept there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeGuard

from billing.currency import UnknownCurrency, max_amount
from billing.decimals import to_decimal
from schemas.bounds import decimal_fits
from schemas.kinds import ChargeModel

Errors = dict[str, list[str]]

HUNDRED = Decimal(100)


class _Checker:
    """The bounds that depend on the plan's currency, and the errors found so far."""

    def __init__(self, currency: str | None) -> None:
        try:
            self.max_amount = max_amount(currency)
        except UnknownCurrency:  # reported on the plan (amount_currency); be strict here
            self.max_amount = max_amount(None)
        self.max_rate = self.max_amount * HUNDRED
        self.errors: Errors = {}

    def add(self, field: str, code: str) -> None:
        codes = self.errors.setdefault(field, [])
        if code not in codes:
            codes.append(code)

    def amount(self, value: Any) -> Decimal | None:
        """The value when it is a valid amount: a number or numeric string, 0 <= x <= max."""
        return _within(value, Decimal(0), self.max_amount)

    def rate(self, value: Any) -> Decimal | None:
        return _within(value, Decimal(0), self.max_rate)


def _within(value: Any, low: Decimal, high: Decimal) -> Decimal | None:
    try:
        number = to_decimal(value)
    except ValueError:
        return None
    return number if low <= number <= high else None


def _units(value: Any) -> Decimal | None:
    """A unit quantity (range bound, free units): any number a stored decimal can be."""
    try:
        number = to_decimal(value)
    except ValueError:
        return None
    return number if decimal_fits(number) else None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_bounds(ranges: Sequence[Mapping[str, Any]]) -> bool:
    """Lago's Validators::RangeBoundsValidator, one range at a time: each ``from_value`` equals
    the previous ``to_value`` or the previous ``to_value`` + 1 (the "previous" of the first
    range is 0, so it starts at 0 or 1); a range other than the last has ``to_value`` >
    ``from_value``; only the last has ``to_value`` null. Styles may mix:
    ``0-0.01, 0.01-10, 11-∞`` is valid (Lago's graduated_service_spec.rb, "when first tier
    flat amount is zero")."""
    previous_to = Decimal(0)
    for index, raw in enumerate(ranges):
        low = _units(raw.get("from_value"))
        high = None if raw.get("to_value") is None else _units(raw.get("to_value"))
        if low is None or (raw.get("to_value") is not None and high is None):
            return False
        if low not in (previous_to, previous_to + 1):
            return False
        last = index == len(ranges) - 1
        if last != (high is None) or (high is not None and high <= low):
            return False
        previous_to = high if high is not None else Decimal(0)
    return True


def _validate_ranges(
    properties: Mapping[str, Any],
    key: str,
    check: _Checker,
    check_range: Callable[[Mapping[str, Any], _Checker], None],
) -> None:
    ranges = properties.get(key)
    if not isinstance(ranges, list) or not ranges:
        check.add(key, f"missing_{key}")
        return
    if not all(isinstance(r, Mapping) for r in ranges):
        check.add(key, f"invalid_{key}")
        return
    for raw in ranges:
        check_range(raw, check)
    if not _valid_bounds(ranges):
        check.add(key, f"invalid_{key}")


def _check_unit_and_flat(raw: Mapping[str, Any], check: _Checker) -> None:
    if check.amount(raw.get("per_unit_amount")) is None:
        check.add("per_unit_amount", "invalid_amount")
    if check.amount(raw.get("flat_amount")) is None:
        check.add("flat_amount", "invalid_amount")


def _check_rate_and_flat(raw: Mapping[str, Any], check: _Checker) -> None:
    if check.amount(raw.get("flat_amount")) is None:
        check.add("flat_amount", "invalid_amount")
    if check.rate(raw.get("rate")) is None:
        check.add("rate", "invalid_rate")


def _standard(properties: Mapping[str, Any], check: _Checker) -> None:
    if check.amount(properties.get("amount")) is None:
        check.add("amount", "invalid_amount")


def _package(properties: Mapping[str, Any], check: _Checker) -> None:
    _standard(properties, check)
    size = properties.get("package_size")
    if not (_is_int(size) and size > 0 and _units(size) is not None):
        check.add("package_size", "invalid_package_size")
    free = properties.get("free_units")
    if not (_is_int(free) and free >= 0 and _units(free) is not None):
        check.add("free_units", "invalid_free_units")


def _graduated(properties: Mapping[str, Any], check: _Checker) -> None:
    _validate_ranges(properties, "graduated_ranges", check, _check_unit_and_flat)


def _graduated_percentage(properties: Mapping[str, Any], check: _Checker) -> None:
    _validate_ranges(properties, "graduated_percentage_ranges", check, _check_rate_and_flat)


def _volume(properties: Mapping[str, Any], check: _Checker) -> None:
    _validate_ranges(properties, "volume_ranges", check, _check_unit_and_flat)


def _percentage(properties: Mapping[str, Any], check: _Checker) -> None:
    if check.rate(properties.get("rate")) is None:
        check.add("rate", "invalid_rate")
    fixed = properties.get("fixed_amount")
    if fixed is not None and check.amount(fixed) is None:
        check.add("fixed_amount", "invalid_fixed_amount")
    per_events = properties.get("free_units_per_events")
    if per_events is not None and not (_is_int(per_events) and per_events > 0):
        check.add("free_units_per_events", "invalid_free_units_per_events")
    per_total = properties.get("free_units_per_total_aggregation")
    if per_total is not None:
        total = _units(per_total)
        if total is None or total < 0:
            check.add(
                "free_units_per_total_aggregation", "invalid_free_units_per_total_aggregation"
            )
    limits = {}
    for key in ("per_transaction_min_amount", "per_transaction_max_amount"):
        if _present(properties.get(key)):
            limits[key] = check.amount(properties.get(key))
            if limits[key] is None:
                check.add(key, "invalid_amount")
    low = limits.get("per_transaction_min_amount")
    high = limits.get("per_transaction_max_amount")
    if low is not None and high is not None and low > high:
        check.add(
            "per_transaction_max_amount",
            "per_transaction_max_lower_than_per_transaction_min",
        )


def _dynamic(properties: Mapping[str, Any], check: _Checker) -> None:
    """``dynamic`` takes no properties (the amount comes with each event)."""


#: Checks the properties of one charge model, adding its errors to the checker.
Validator = Callable[[Mapping[str, Any], _Checker], None]

#: Charge model -> validator of its properties (one for each member).
VALIDATORS: dict[ChargeModel, Validator] = {
    ChargeModel.STANDARD: _standard,
    ChargeModel.PACKAGE: _package,
    ChargeModel.GRADUATED: _graduated,
    ChargeModel.GRADUATED_PERCENTAGE: _graduated_percentage,
    ChargeModel.VOLUME: _volume,
    ChargeModel.PERCENTAGE: _percentage,
    ChargeModel.DYNAMIC: _dynamic,
}


def validate_charge_properties(
    charge_model: str, properties: Mapping[str, Any], currency: str | None = None
) -> dict[str, list[str]]:
    """Check ``properties`` for ``charge_model``; {} when valid, else field -> Lago error codes.

    E.g. ``{"amount": ["invalid_amount"]}``, ``{"graduated_ranges": ["invalid_graduated_ranges"]}``,
    ``{"charge_model": ["value_is_invalid"]}`` for an unknown model. Amounts may be numeric
    strings or numbers (Lago: strings only); package_size, free_units and
    free_units_per_events must be integers. ``currency`` (the plan's) sets the largest amount;
    without it (or when unknown), the smallest of all currencies' applies.
    """
    try:
        validator = VALIDATORS[ChargeModel(charge_model)]
    except ValueError:  # not a member
        return {"charge_model": ["value_is_invalid"]}
    check = _Checker(currency)
    validator(properties if isinstance(properties, Mapping) else {}, check)
    return check.errors
