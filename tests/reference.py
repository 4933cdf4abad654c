"""A pure reference implementation of SPEC §5 units, computed from raw enriched rows.

This is the test oracle for the production path (which reads pre-aggregated ClickHouse rows), so
it lives with the tests, outside the shipped packages. It is written the slow, obvious way --
filter the rows of a window, sort them, walk them -- so that it shares no shortcut with the
production code. Both must agree to the last digit.

All functions take the enriched rows of ONE subscription and key their results by
``(charge_id, charge_filter_id, grouped_by)``. The window is ``[period_from_ms, period_to_ms)``.
Timestamps come from ``row.event.timestamp_ms``; numeric values from ``row.decimal_value``;
unique_count values from ``row.value`` (a string).

Choices where the SPEC is silent:

* A key appears in the result when at least one row *takes part* in its aggregation: a row in
  the window, or for recurring metrics any row before ``period_to_ms`` (so a recurring key whose
  history nets to 0 is present with 0 units). Rows at or after ``period_to_ms`` never create a
  key. Absent keys mean "no usage" (0 units).
* Rows with an empty ``charge_id`` (a metric with no charge in the plan) are keyed like any other.
* unique_count: only the exact string ``"remove"`` in ``properties.operation_type`` retracts;
  anything else (missing, ``None``, ``"add"``, other strings) is an add.
* Ties on the timestamp are broken by the input order (a stable sort), for latest_agg,
  unique_count_agg and the per-event values.
* Arithmetic is exact: Decimal sums run in a 100-digit context that traps ``Inexact``, and the
  weighted-sum division is done with :class:`fractions.Fraction` before the ceiling at 20
  decimals, so the oracle can never round silently.
* Misuse raises ``ValueError``: rows of several subscriptions, an unknown aggregation type,
  ``recurring`` on count/max/latest, a numeric type with a row lacking ``decimal_value``, an
  inverted window, or ``period_days < 1`` for weighted_sum_agg.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction

from enrichment.enricher import EnrichedRow
from schemas.kinds import NON_RECURRING_TYPES, AggregationType

__all__ = ["Key", "reference_event_values", "reference_units"]

Key = tuple[str, str, tuple[tuple[str, str], ...]]

#: Exact arithmetic: 100 significant digits, and any rounding at all raises ``Inexact``.
_EXACT = Context(prec=100, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
_ZERO = Decimal(0)
_MS_PER_DAY = 86_400 * 1000
#: weighted_sum_agg results are rounded up to 20 decimals (SPEC §5).
_WEIGHTED_PLACES = 20


def _key(row: EnrichedRow) -> Key:
    return (row.charge_id, row.charge_filter_id, row.grouped_by)


def _ts(row: EnrichedRow) -> int:
    return row.event.timestamp_ms


def _number(row: EnrichedRow) -> Decimal:
    if row.decimal_value is None:
        raise ValueError(
            f"row {row.event.transaction_id!r} has no decimal_value (value {row.value!r})"
        )
    return row.decimal_value


def _check_one_subscription(rows: Sequence[EnrichedRow]) -> None:
    ids = {row.subscription_id for row in rows}
    if len(ids) > 1:
        raise ValueError(f"rows of several subscriptions: {sorted(ids)}")


def _check_window(period_from_ms: int, period_to_ms: int) -> None:
    if period_from_ms > period_to_ms:
        raise ValueError(f"empty window: from {period_from_ms} > to {period_to_ms}")


def _group(
    rows: Iterable[EnrichedRow], keep: Callable[[EnrichedRow], bool]
) -> dict[Key, list[EnrichedRow]]:
    """Rows kept by ``keep``, per key, sorted by timestamp (ties: input order)."""
    groups: dict[Key, list[EnrichedRow]] = {}
    for row in rows:
        if keep(row):
            groups.setdefault(_key(row), []).append(row)
    for members in groups.values():
        members.sort(key=_ts)  # list.sort is stable: equal timestamps keep the input order
    return groups


def _count(rows: list[EnrichedRow]) -> Decimal:
    return Decimal(len(rows))


def _sum(rows: list[EnrichedRow]) -> Decimal:
    total = _ZERO
    for row in rows:
        total += _number(row)
    return total


def _max(rows: list[EnrichedRow]) -> Decimal:
    best: Decimal | None = None
    for row in rows:
        value = _number(row)
        if best is None or value > best:
            best = value
    return _ZERO if best is None else best


def _latest(rows: list[EnrichedRow]) -> Decimal:
    # rows are in timestamp order, ties in input order: the last one is the latest.
    if not rows:
        return _ZERO
    value = _number(rows[-1])
    return value if value > 0 else _ZERO


def _unique_count(rows: list[EnrichedRow]) -> Decimal:
    present: dict[str, bool] = {}
    for row in rows:
        if row.event.properties.get("operation_type") == "remove":
            # a remove retracts a present value; without a prior add it changes nothing
            present[row.value] = False
        else:
            # an add makes the value present; an add after an add changes nothing
            present[row.value] = True
    return Decimal(sum(1 for is_present in present.values() if is_present))


def _weighted_sum(
    rows: list[EnrichedRow], *, period_from_ms: int, period_to_ms: int, period_days: int
) -> Decimal:
    """Walk the level over [from, to): Σ level × ms it held, / (days × 86400 s), ceil at 1e-20.

    ``rows`` holds the carried-over rows (ts < from, recurring only) and the window rows.
    """
    level = _ZERO
    cursor = period_from_ms
    level_ms = _ZERO  # Σ level × milliseconds (exact)
    for row in rows:
        ts = _ts(row)
        if ts < period_from_ms:
            level += _number(row)  # carried-over level: it holds from the start of the window
            continue
        level_ms += level * (ts - cursor)
        cursor = ts
        level += _number(row)
    level_ms += level * (period_to_ms - cursor)
    exact = Fraction(level_ms) / (period_days * _MS_PER_DAY)
    scaled_up = math.ceil(exact * 10**_WEIGHTED_PLACES)
    return Decimal(scaled_up).scaleb(-_WEIGHTED_PLACES)


_SIMPLE: dict[AggregationType, Callable[[list[EnrichedRow]], Decimal]] = {
    AggregationType.COUNT: _count,
    AggregationType.SUM: _sum,
    AggregationType.MAX: _max,
    AggregationType.LATEST: _latest,
    AggregationType.UNIQUE_COUNT: _unique_count,
}


def reference_units(
    rows: Sequence[EnrichedRow],
    *,
    aggregation_type: AggregationType | str,
    recurring: bool,
    period_from_ms: int,
    period_to_ms: int,
    period_days: int,
) -> dict[Key, Decimal]:
    """SPEC §5 units before rounding, per ``(charge_id, charge_filter_id, grouped_by)``.

    ``rows`` are the enriched rows of one subscription and one metric, in any order (the input
    order breaks timestamp ties). Non-recurring metrics see the rows with ``from <= ts < to``;
    recurring sum/unique_count see every row with ``ts < to``; recurring weighted_sum starts
    from the level carried by the rows with ``ts < from``. ``period_days`` (see
    :func:`billing.periods.period_days`) is only read by weighted_sum_agg. Round the result
    with :func:`billing.rounding.round_units`.
    """
    try:
        agg = AggregationType(aggregation_type)
    except ValueError:
        raise ValueError(f"unknown aggregation type: {aggregation_type!r}") from None
    if recurring and agg in NON_RECURRING_TYPES:
        raise ValueError(f"{agg} cannot be recurring")
    _check_window(period_from_ms, period_to_ms)
    _check_one_subscription(rows)

    def keep(row: EnrichedRow) -> bool:
        ts = _ts(row)
        return ts < period_to_ms and (recurring or period_from_ms <= ts)

    groups = _group(rows, keep)
    with localcontext(_EXACT):
        if agg == AggregationType.WEIGHTED_SUM:
            if period_days < 1:
                raise ValueError(f"period_days must be >= 1, got {period_days}")
            return {
                key: _weighted_sum(
                    members,
                    period_from_ms=period_from_ms,
                    period_to_ms=period_to_ms,
                    period_days=period_days,
                )
                for key, members in groups.items()
            }
        compute = _SIMPLE[agg]
        return {key: compute(members) for key, members in groups.items()}


def reference_event_values(
    rows: Sequence[EnrichedRow], period_from_ms: int, period_to_ms: int
) -> dict[Key, tuple[Decimal, ...]]:
    """Per key, the ``decimal_value`` of each row in ``[from, to)``, in timestamp order (ties:
    input order): ``ChargeUsage.event_values`` for the percentage charge model."""
    _check_window(period_from_ms, period_to_ms)
    _check_one_subscription(rows)
    groups = _group(rows, lambda row: period_from_ms <= _ts(row) < period_to_ms)
    return {key: tuple(_number(row) for row in members) for key, members in groups.items()}
