"""SPEC §3: turn one valid usage event into enriched rows, or a dead-letter reason."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from enrichment.catalog_index import CatalogIndex, PreparedCharge
from schemas.catalog import NUMERIC_TYPES
from schemas.event import UsageEvent
from schemas.numbers import canonical_string, to_decimal

UNKNOWN_METRIC = "unknown_metric"
INVALID_VALUE = "invalid_value"
NO_SUBSCRIPTION = "no_subscription"

# Values are stored as Decimal(38, 12): 26 integer digits, 12 decimals. Larger values are
# rejected (invalid_value); more decimals are rounded half-even to 12 places.
SCALE = 12
QUANTUM = Decimal(1).scaleb(-SCALE)
INTEGER_DIGITS = 26


@dataclass(slots=True)  # not frozen: frozen dataclasses are several times slower to build
class EnrichedRow:
    """One (event, matched charge) pair, ready for storage and roll-up."""

    event: UsageEvent
    subscription_id: str
    plan_id: str
    customer_id: str
    aggregation_type: str
    value: str
    decimal_value: Decimal | None
    charge_id: str
    charge_filter_id: str
    grouped_by: tuple[tuple[str, str], ...]
    charge_model: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event cannot be stored: a dead-letter reason code and a message."""

    code: str
    message: str


def enrich(event: UsageEvent, index: CatalogIndex) -> list[EnrichedRow] | Rejection:
    """Enrich ``event`` against the catalog; one row per matched charge.

    An event whose plan has no charge on its metric is still stored, as one row with an
    empty ``charge_id`` (it is counted as stored and takes part in dedup, but prices nothing).
    """
    metric = index.metric_at(event.organization_id, event.code, event.timestamp_ms)
    if metric is None:
        return Rejection(UNKNOWN_METRIC, f"no billable metric with code {event.code!r}")

    agg = metric.aggregation_type
    decimal_value: Decimal | None
    if agg == "count_agg":
        value, decimal_value = "1", Decimal(1)
    else:
        raw = event.properties.get(metric.field_name or "")
        text = canonical_string(raw)
        decimal_value = to_decimal(raw)
        if agg in NUMERIC_TYPES and decimal_value is None:
            return Rejection(
                INVALID_VALUE,
                f"property {metric.field_name!r} must be a number for {agg}, got {raw!r}",
            )
        if text is None:
            return Rejection(INVALID_VALUE, f"property {metric.field_name!r} is missing")
        value = text
        if decimal_value is not None and agg in NUMERIC_TYPES:
            # ``value`` is the canonical text: plain notation, no trailing zeros
            integer, _, fraction = value.lstrip("-").partition(".")
            if len(integer) > INTEGER_DIGITS:
                return Rejection(INVALID_VALUE, f"{value} is outside Decimal(38, 12)")
            if len(fraction) > SCALE:
                decimal_value = decimal_value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)

    sub = index.subscription_at(
        event.organization_id, event.external_subscription_id, event.timestamp_ms
    )
    if sub is None:
        return Rejection(
            NO_SUBSCRIPTION,
            f"no subscription {event.external_subscription_id!r} active at {event.timestamp_ms}",
        )
    plan = index.plan_at(event.organization_id, sub.plan_code, event.timestamp_ms)
    customer = index.customers.get((event.organization_id, sub.external_customer_id))
    plan_id = plan.id if plan else ""
    customer_id = customer.id if customer else ""

    charges = index.charges_for(plan, metric.code) if plan else ()
    if not charges:
        return [
            EnrichedRow(
                event, sub.id, plan_id, customer_id, agg, value, decimal_value, "", "", ()
            )
        ]
    props = event.properties
    rows = []
    for prepared in charges:
        filter_id, group_keys = match_filter(prepared, props)
        rows.append(
            EnrichedRow(
                event=event,
                subscription_id=sub.id,
                plan_id=plan_id,
                customer_id=customer_id,
                aggregation_type=agg,
                value=value,
                decimal_value=decimal_value,
                charge_id=prepared.charge.id,
                charge_filter_id=filter_id,
                grouped_by=grouped_by(group_keys, props),
                charge_model=prepared.charge.charge_model,
            )
        )
    return rows


def match_filter(prepared: PreparedCharge, properties: dict) -> tuple[str, tuple[str, ...]]:
    """The most specific matching filter's id and group keys; ("", charge keys) if none match."""
    for candidate in prepared.filters:
        for key, allowed in zip(candidate.keys, candidate.allowed, strict=True):
            if canonical_string(properties.get(key)) not in allowed:
                break
        else:
            return candidate.id, candidate.pricing_group_keys
    return "", prepared.charge.pricing_group_keys


def grouped_by(keys: tuple[str, ...], properties: dict) -> tuple[tuple[str, str], ...]:
    """``(key, canonical value or "")`` for each pricing group key, sorted by key."""
    if not keys:
        return ()
    return tuple(sorted((k, canonical_string(properties.get(k)) or "") for k in keys))
