"""Pre-aggregate enriched rows per (subscription, charge, filter, group, time bucket).

Billing reads these rows instead of raw events. A bucket is 15 minutes: every billing period
boundary (local midnight in any IANA timezone in use today) falls on a 15-minute boundary in UTC,
so a period is always a whole number of buckets.

Order matters for some types. Within one subscription (one Kafka partition) the order of events
is (timestamp, offset): every state that depends on order keeps both, so merging buckets with
arg-max over (timestamp, offset) gives the same answer as walking the events one by one.

- count, sum, max, latest, dynamic: one :class:`RollupState` per bucket.
- weighted_sum: the level at any instant is a running sum, so Σ level × time over a window
  follows from Σ value and Σ value × time (see :mod:`aggregation.units`).
- unique_count: one :class:`UniqueState` per (bucket, value): the last operation on the value.
- percentage: per-event values (free units and per-transaction pricing need each event).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import NamedTuple

from enrichment.enricher import EnrichedRow
from schemas.kinds import AggregationType, ChargeModel

BUCKET_MS = 15 * 60 * 1000
WIDE_PRECISION = 100  # Decimal digits: sums and products of Decimal(38, 12) stay exact


def bucket_start_ms(timestamp_ms: int) -> int:
    """Start of the 15-minute bucket holding ``timestamp_ms``."""
    return timestamp_ms - timestamp_ms % BUCKET_MS


class RollupKey(NamedTuple):
    """The dimensions of one pre-aggregated row (a tuple: cheap to build and to hash)."""

    organization_id: str
    external_subscription_id: str
    subscription_id: str
    charge_id: str
    charge_filter_id: str
    grouped_by: tuple[tuple[str, str], ...]
    code: str
    aggregation_type: AggregationType
    bucket_start_ms: int


#: :class:`RollupKey`'s fields as a plain tuple (the hot loop's dict key).
_RawKey = tuple[str, str, str, str, str, tuple[tuple[str, str], ...], str, AggregationType, int]
# Globals for the per-row tests: reading an enum member costs ~50 ns.
_WEIGHTED_SUM = AggregationType.WEIGHTED_SUM
_UNIQUE_COUNT = AggregationType.UNIQUE_COUNT
_PERCENTAGE = ChargeModel.PERCENTAGE


@dataclass(slots=True)
class RollupState:
    """Mergeable per-bucket state: every field combines with sum, max or arg-max."""

    events_count: int = 0
    value_sum: Decimal = Decimal(0)
    value_max: Decimal | None = None
    latest_timestamp_ms: int = -1
    latest_order: int = -1
    latest_value: Decimal = Decimal(0)
    precise_total_amount_cents: Decimal = Decimal(0)
    value_time_sum: Decimal = Decimal(0)  # Σ value × timestamp in seconds (weighted_sum)

    def add(self, row: EnrichedRow, order: int = 0) -> None:
        """Fold one enriched row (at log position ``order``) into the state."""
        self.events_count += 1
        value = row.decimal_value
        ts = row.event.timestamp_ms
        if value is not None:
            self.value_sum += value
            if self.value_max is None or value > self.value_max:
                self.value_max = value
            if (ts, order) >= (self.latest_timestamp_ms, self.latest_order):
                self.latest_timestamp_ms, self.latest_order = ts, order
                self.latest_value = value
            if row.aggregation_type == _WEIGHTED_SUM:
                self.value_time_sum += value * Decimal(ts).scaleb(-3)
        if row.event.precise_total_amount_cents is not None:
            self.precise_total_amount_cents += row.event.precise_total_amount_cents


class UniqueKey(NamedTuple):
    """One distinct value of a unique_count charge in one bucket."""

    organization_id: str
    subscription_id: str
    charge_id: str
    charge_filter_id: str
    grouped_by: tuple[tuple[str, str], ...]
    value: str
    bucket_start_ms: int


@dataclass(slots=True)
class UniqueState:
    """The last operation (by timestamp, then log position) on a value within a bucket."""

    events_count: int = 0
    latest_timestamp_ms: int = -1
    latest_order: int = -1
    latest_add: bool = False

    def add(self, row: EnrichedRow, order: int) -> None:
        """Fold one add/remove operation into the state."""
        self.events_count += 1
        ts = row.event.timestamp_ms
        if (ts, order) >= (self.latest_timestamp_ms, self.latest_order):
            self.latest_timestamp_ms, self.latest_order = ts, order
            self.latest_add = row.event.properties.get("operation_type") != "remove"


def _orders(rows: Sequence[EnrichedRow], orders: Sequence[int] | None) -> Iterable[int]:
    return range(len(rows)) if orders is None else orders


def rollup(
    rows: Sequence[EnrichedRow], orders: Sequence[int] | None = None
) -> dict[RollupKey, RollupState]:
    """Group priced rows (those with a charge) into per-bucket states.

    ``orders`` are the rows' log positions (Kafka offsets); by default their input order.
    """
    states: dict[_RawKey, RollupState] = {}
    with localcontext() as ctx:
        ctx.prec = WIDE_PRECISION
        for row, order in zip(rows, _orders(rows, orders), strict=True):
            if not row.charge_id:
                continue
            event = row.event
            ts = event.timestamp_ms
            key = (  # a plain tuple per row (cheaper than the named one, built once per key)
                event.organization_id,
                event.external_subscription_id,
                row.subscription_id,
                row.charge_id,
                row.charge_filter_id,
                row.grouped_by,
                event.code,
                row.aggregation_type,
                ts - ts % BUCKET_MS,
            )
            state = states.get(key)
            if state is None:
                state = states[key] = RollupState()
            state.add(row, order)
    return {RollupKey._make(key): state for key, state in states.items()}


def unique_rollup(
    rows: Sequence[EnrichedRow], orders: Sequence[int] | None = None
) -> dict[UniqueKey, UniqueState]:
    """Per-bucket last operation of every value of unique_count charges."""
    states: dict[UniqueKey, UniqueState] = {}
    for row, order in zip(rows, _orders(rows, orders), strict=True):
        if not row.charge_id or row.aggregation_type != _UNIQUE_COUNT:
            continue
        key = UniqueKey(
            row.event.organization_id,
            row.subscription_id,
            row.charge_id,
            row.charge_filter_id,
            row.grouped_by,
            row.value,
            bucket_start_ms(row.event.timestamp_ms),
        )
        state = states.get(key)
        if state is None:
            state = states[key] = UniqueState()
        state.add(row, order)
    return states


def percentage_rows(
    rows: Sequence[EnrichedRow], orders: Sequence[int] | None = None
) -> list[tuple[EnrichedRow, int]]:
    """Rows of percentage charges with their log positions (their values are kept one by one)."""
    return [
        (row, order)
        for row, order in zip(rows, _orders(rows, orders), strict=True)
        if row.charge_id and row.charge_model == _PERCENTAGE and row.decimal_value is not None
    ]
