"""SPEC §3: turn one valid usage event into enriched rows, or a dead-letter reason."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Literal, final

from enrichment.catalog_index import CatalogIndex, Match, PreparedCharge
from schemas.bounds import DECIMAL_SCALE, VALUE_OUT_OF_RANGE, decimal_fits
from schemas.event import UsageEvent
from schemas.kinds import NUMERIC_TYPES, AggregationType, ChargeModel
from schemas.numbers import canonical_string, plain_decimal, to_decimal
from schemas.reasons import DeadLetterReason

# Dead-letter reason codes of enrichment (the one list: schemas.reasons.DeadLetterReason).
UNKNOWN_METRIC = DeadLetterReason.UNKNOWN_METRIC
INVALID_VALUE = DeadLetterReason.INVALID_VALUE
NO_SUBSCRIPTION = DeadLetterReason.NO_SUBSCRIPTION

# Values are stored as Decimal(38, 12) (schemas.bounds): a value that does not fit, once
# rounded, is rejected (value_out_of_range); more decimals are rounded half-even to 12 places.
SCALE = DECIMAL_SCALE
QUANTUM = Decimal(1).scaleb(-SCALE)
# Explicit: the thread's context (28 digits by default) would make quantize fail on a value
# with more digits, e.g. 20 integer digits and 12 decimals. 38 digits always suffice here.
_QUANTIZE = Context(prec=40)


@dataclass(slots=True)  # not frozen: frozen dataclasses are several times slower to build
class EnrichedRow:
    """One (event, matched charge) pair, ready for storage and roll-up."""

    event: UsageEvent
    subscription_id: str
    plan_id: str
    customer_id: str
    aggregation_type: AggregationType
    value: str
    decimal_value: Decimal | None
    charge_id: str
    charge_filter_id: str
    grouped_by: tuple[tuple[str, str], ...]
    charge_model: ChargeModel | Literal[""] = ""  # "" for the row of an event with no charge


@final  # so that ``type(x) is Rejection`` (the hot path's test) narrows both ways
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
    route = index.route(
        event.organization_id, event.external_subscription_id, event.code, event.timestamp_ms
    )
    metric = route.metric
    if metric is None:
        return Rejection(UNKNOWN_METRIC, f"no billable metric with code {event.code!r}")

    agg = metric.aggregation_type
    value: str
    decimal_value: Decimal | None
    if agg == _COUNT:
        value, decimal_value = "1", _ONE
    else:
        raw = event.properties.get(metric.field_name or "")
        checked = checked_value(raw, agg, metric.field_name)
        if type(checked) is Rejection:
            return checked
        value, decimal_value = checked

    sub = route.subscription
    if sub is None:
        return Rejection(
            NO_SUBSCRIPTION,
            f"no subscription {event.external_subscription_id!r} active at {event.timestamp_ms}",
        )
    if not route.charges:
        return [
            EnrichedRow(
                event, sub.id, route.plan_id, route.customer_id, agg, value, decimal_value,
                "", "", ()
            )
        ]
    props = event.properties
    rows = []
    for prepared in route.charges:
        filter_id, group = match_charge(prepared, props)
        rows.append(
            EnrichedRow(
                event, sub.id, route.plan_id, route.customer_id, agg, value, decimal_value,
                prepared.charge.id, filter_id, group, prepared.charge.charge_model,
            )
        )
    return rows


_ONE = Decimal(1)
_COUNT = AggregationType.COUNT  # a global: reading an enum member costs ~50 ns per event
_MATCH_CACHE_LIMIT = 100_000  # memoized property combinations per charge


def _check_value(
    raw: object, agg: AggregationType, field_name: str | None
) -> tuple[str, Decimal | None] | Rejection:
    """(canonical text, Decimal or None) of a metric's property value, or why it is invalid."""
    text: str | None
    decimal_value: Decimal | None
    plain = plain_decimal(raw) if type(raw) is str else None
    if plain is not None:
        text, decimal_value = plain
    else:
        text, decimal_value = canonical_string(raw), to_decimal(raw)
    numeric = agg in NUMERIC_TYPES
    if numeric and decimal_value is None:
        return Rejection(
            INVALID_VALUE, f"property {field_name!r} must be a number for {agg}, got {raw!r}"
        )
    if text is None:
        return Rejection(INVALID_VALUE, f"property {field_name!r} is missing")
    if decimal_value is not None and numeric:
        if not decimal_fits(decimal_value):
            return Rejection(
                VALUE_OUT_OF_RANGE,
                f"property {field_name!r}: {text:.40} does not fit Decimal(38, 12)",
            )
        # ``text`` is canonical: plain notation, no trailing zeros
        if len(text.partition(".")[2]) > SCALE:
            decimal_value = decimal_value.quantize(
                QUANTUM, rounding=ROUND_HALF_EVEN, context=_QUANTIZE
            )
    return text, decimal_value


# Pure, so memoized; typed, because 1, 1.0 and True are equal keys with different answers.
_checked_value = functools.lru_cache(maxsize=1 << 17, typed=True)(_check_value)


def checked_value(
    raw: object, agg: AggregationType, field_name: str | None
) -> tuple[str, Decimal | None] | Rejection:
    """(canonical text, Decimal or None) of a metric's property value, or why it is invalid
    (memoized; an unhashable value is checked afresh)."""
    try:
        return _checked_value(raw, agg, field_name)
    except TypeError:  # not hashable: cannot happen for a parsed event, handled anyway
        return _check_value(raw, agg, field_name)


def match_charge(prepared: PreparedCharge, properties: dict[str, object]) -> Match:
    """:func:`match_filter` and :func:`grouped_by` together, memoized per charge by the values
    of the properties they read (when all are strings or missing: other types are computed)."""
    values = tuple([properties.get(k) for k in prepared.keys])
    memo = prepared.matches
    found = memo.get(values)
    if found is not None:
        return found
    filter_id, group_keys = match_filter(prepared, properties)
    found = (filter_id, grouped_by(group_keys, properties))
    if all(type(v) is str or v is None for v in values):  # 1 == 1.0 == True: keep them apart
        if len(memo) >= _MATCH_CACHE_LIMIT:
            memo.clear()
        memo[values] = found
    return found


def match_filter(
    prepared: PreparedCharge, properties: dict[str, object]
) -> tuple[str, tuple[str, ...]]:
    """The most specific matching filter's id and group keys; ("", charge keys) if none match."""
    for candidate in prepared.filters:
        for key, allowed in zip(candidate.keys, candidate.allowed, strict=True):
            if canonical_string(properties.get(key)) not in allowed:
                break
        else:
            return candidate.id, candidate.pricing_group_keys
    return "", prepared.charge.pricing_group_keys


def grouped_by(
    keys: tuple[str, ...], properties: dict[str, object]
) -> tuple[tuple[str, str], ...]:
    """``(key, canonical value or "")`` for each pricing group key, sorted by key."""
    if not keys:
        return ()
    return tuple(sorted((k, canonical_string(properties.get(k)) or "") for k in keys))
