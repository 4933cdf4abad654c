"""Validation of charge properties with Lago's error codes (app/services/charges/validators)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from itertools import pairwise
from typing import Any

from billing.decimals import to_decimal

Errors = dict[str, list[str]]


def _add(errors: Errors, field: str, code: str) -> None:
    codes = errors.setdefault(field, [])
    if code not in codes:
        codes.append(code)


def _amount(value: Any) -> Decimal | None:
    """The value as a Decimal when it is a valid amount (number or numeric string, >= 0)."""
    try:
        amount = to_decimal(value)
    except ValueError:
        return None
    return amount if amount >= 0 else None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bound(value: Any) -> Decimal | None:
    try:
        return to_decimal(value)
    except ValueError:
        return None


def _valid_bounds(ranges: Sequence[Any]) -> bool:
    """Ranges start at 0, each non-last has from < to, only the last has to null, and they are
    contiguous in one style: all adjacent (next from = previous to) or all integer-style
    (next from = previous to + 1)."""
    bounds: list[tuple[Decimal, Decimal | None]] = []
    for index, raw in enumerate(ranges):
        low = _bound(raw.get("from_value"))
        high = None if raw.get("to_value") is None else _bound(raw.get("to_value"))
        last = index == len(ranges) - 1
        if low is None or (raw.get("to_value") is not None and high is None):
            return False
        if last != (high is None) or (high is not None and high <= low):
            return False
        bounds.append((low, high))
    if bounds[0][0] != 0:
        return False
    steps = {nxt[0] - prev[1] for prev, nxt in pairwise(bounds)}
    return steps <= {0} or steps <= {1}


def _validate_ranges(
    properties: Mapping[str, Any],
    key: str,
    errors: Errors,
    check_range: Callable[[Mapping[str, Any], Errors], None],
) -> None:
    ranges = properties.get(key)
    if not isinstance(ranges, list) or not ranges:
        _add(errors, key, f"missing_{key}")
        return
    if not all(isinstance(r, Mapping) for r in ranges):
        _add(errors, key, f"invalid_{key}")
        return
    for raw in ranges:
        check_range(raw, errors)
    if not _valid_bounds(ranges):
        _add(errors, key, f"invalid_{key}")


def _check_unit_and_flat(raw: Mapping[str, Any], errors: Errors) -> None:
    if _amount(raw.get("per_unit_amount")) is None:
        _add(errors, "per_unit_amount", "invalid_amount")
    if _amount(raw.get("flat_amount")) is None:
        _add(errors, "flat_amount", "invalid_amount")


def _check_rate_and_flat(raw: Mapping[str, Any], errors: Errors) -> None:
    if _amount(raw.get("flat_amount")) is None:
        _add(errors, "flat_amount", "invalid_amount")
    if _amount(raw.get("rate")) is None:
        _add(errors, "rate", "invalid_rate")


def _standard(properties: Mapping[str, Any], errors: Errors) -> None:
    if _amount(properties.get("amount")) is None:
        _add(errors, "amount", "invalid_amount")


def _package(properties: Mapping[str, Any], errors: Errors) -> None:
    _standard(properties, errors)
    size = properties.get("package_size")
    if not (_is_int(size) and size > 0):
        _add(errors, "package_size", "invalid_package_size")
    free = properties.get("free_units")
    if not (_is_int(free) and free >= 0):
        _add(errors, "free_units", "invalid_free_units")


def _graduated(properties: Mapping[str, Any], errors: Errors) -> None:
    _validate_ranges(properties, "graduated_ranges", errors, _check_unit_and_flat)


def _graduated_percentage(properties: Mapping[str, Any], errors: Errors) -> None:
    _validate_ranges(properties, "graduated_percentage_ranges", errors, _check_rate_and_flat)


def _volume(properties: Mapping[str, Any], errors: Errors) -> None:
    _validate_ranges(properties, "volume_ranges", errors, _check_unit_and_flat)


def _percentage(properties: Mapping[str, Any], errors: Errors) -> None:
    if _amount(properties.get("rate")) is None:
        _add(errors, "rate", "invalid_rate")
    fixed = properties.get("fixed_amount")
    if fixed is not None and _amount(fixed) is None:
        _add(errors, "fixed_amount", "invalid_fixed_amount")
    per_events = properties.get("free_units_per_events")
    if per_events is not None and not (_is_int(per_events) and per_events > 0):
        _add(errors, "free_units_per_events", "invalid_free_units_per_events")
    per_total = properties.get("free_units_per_total_aggregation")
    if per_total is not None and _amount(per_total) is None:
        _add(errors, "free_units_per_total_aggregation", "invalid_free_units_per_total_aggregation")
    limits = {}
    for key in ("per_transaction_min_amount", "per_transaction_max_amount"):
        if _present(properties.get(key)):
            limits[key] = _amount(properties.get(key))
            if limits[key] is None:
                _add(errors, key, "invalid_amount")
    low = limits.get("per_transaction_min_amount")
    high = limits.get("per_transaction_max_amount")
    if low is not None and high is not None and low > high:
        _add(
            errors,
            "per_transaction_max_amount",
            "per_transaction_max_lower_than_per_transaction_min",
        )


def _dynamic(properties: Mapping[str, Any], errors: Errors) -> None:
    """``dynamic`` takes no properties (the amount comes with each event)."""


_VALIDATORS: dict[str, Callable[[Mapping[str, Any], Errors], None]] = {
    "standard": _standard,
    "package": _package,
    "graduated": _graduated,
    "graduated_percentage": _graduated_percentage,
    "volume": _volume,
    "percentage": _percentage,
    "dynamic": _dynamic,
}


def validate_charge_properties(
    charge_model: str, properties: Mapping[str, Any]
) -> dict[str, list[str]]:
    """Check ``properties`` for ``charge_model``; {} when valid, else field -> Lago error codes.

    E.g. ``{"amount": ["invalid_amount"]}``, ``{"graduated_ranges": ["invalid_graduated_ranges"]}``,
    ``{"charge_model": ["value_is_invalid"]}`` for an unknown model. Amounts may be numeric
    strings or numbers (Lago: strings only); package_size, free_units and
    free_units_per_events must be integers.
    """
    validator = _VALIDATORS.get(charge_model)
    if validator is None:
        return {"charge_model": ["value_is_invalid"]}
    errors: Errors = {}
    validator(properties if isinstance(properties, Mapping) else {}, errors)
    return errors
