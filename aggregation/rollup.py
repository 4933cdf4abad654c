"""Pre-aggregate enriched rows per (subscription, charge, filter, group, time bucket).

Billing reads these rows instead of raw events. A bucket is 15 minutes: every billing period
boundary (local midnight in any IANA timezone in use today) falls on a 15-minute boundary in UTC,
so a period is always a whole number of buckets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from enrichment.enricher import EnrichedRow

BUCKET_MS = 15 * 60 * 1000


def bucket_start_ms(timestamp_ms: int) -> int:
    """Start of the 15-minute bucket holding ``timestamp_ms``."""
    return timestamp_ms - timestamp_ms % BUCKET_MS


@dataclass(frozen=True, slots=True)
class RollupKey:
    """The dimensions of one pre-aggregated row."""

    organization_id: str
    external_subscription_id: str
    subscription_id: str
    charge_id: str
    charge_filter_id: str
    grouped_by: tuple[tuple[str, str], ...]
    code: str
    aggregation_type: str
    bucket_start_ms: int


@dataclass(slots=True)
class RollupState:
    """Mergeable per-bucket state: every field combines with sum, max or arg-max."""

    events_count: int = 0
    value_sum: Decimal = Decimal(0)
    value_max: Decimal | None = None
    latest_timestamp_ms: int = -1
    latest_value: Decimal = Decimal(0)
    precise_total_amount_cents: Decimal = Decimal(0)

    def add(self, row: EnrichedRow) -> None:
        """Fold one enriched row into the state."""
        self.events_count += 1
        value = row.decimal_value
        if value is not None:
            self.value_sum += value
            if self.value_max is None or value > self.value_max:
                self.value_max = value
            if row.event.timestamp_ms >= self.latest_timestamp_ms:
                self.latest_timestamp_ms = row.event.timestamp_ms
                self.latest_value = value
        if row.event.precise_total_amount_cents is not None:
            self.precise_total_amount_cents += row.event.precise_total_amount_cents


def rollup(rows: Iterable[EnrichedRow]) -> dict[RollupKey, RollupState]:
    """Group priced rows (those with a charge) into per-bucket states."""
    states: dict[RollupKey, RollupState] = {}
    for row in rows:
        if not row.charge_id:
            continue
        event = row.event
        key = RollupKey(
            event.organization_id,
            event.external_subscription_id,
            row.subscription_id,
            row.charge_id,
            row.charge_filter_id,
            row.grouped_by,
            event.code,
            row.aggregation_type,
            bucket_start_ms(event.timestamp_ms),
        )
        state = states.get(key)
        if state is None:
            state = states[key] = RollupState()
        state.add(row)
    return states
