"""Catalog resources (Lago field names) and their validation.

Every resource is a frozen dataclass scoped to one organization. ``parse_*`` functions turn a
Lago-shaped JSON object into a resource or raise :class:`CatalogValidationError` whose
``details`` map a field to Lago error codes (rendered as a 422 by the API).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.bounds import MAX_ID_LENGTH, instant_fits
from schemas.kinds import (
    NON_RECURRING_TYPES,
    NOT_ON_LATEST_AGG,
    PAYABLE_IN_ADVANCE_TYPES,
    AggregationType,
    ChargeModel,
)
from schemas.numbers import canonical_string

PLAN_INTERVALS = frozenset({"weekly", "monthly", "quarterly", "yearly"})
BILLING_TIMES = frozenset({"calendar", "anniversary"})
ROUNDING_FUNCTIONS = frozenset({"round", "ceil", "floor"})
#: Accepted ``rounding_precision``, both ends included. 20 is the most decimals any aggregation
#: produces (weighted_sum_agg ceils to 20, stored values have 12), so a larger precision could
#: not change a value; -26 rounds to the 10**26 that bounds every stored value
#: (schemas.bounds), so a smaller one could only turn every value into 0 or into a power of ten
#: the store cannot hold. Outside: 422 ``value_is_out_of_range`` (Lago's numericality code;
#: Lago itself only bounds it by its ``integer`` column).
ROUNDING_PRECISION_RANGE = (-26, 20)
#: Lago's ``charges.min_amount_cents`` and ``plans.amount_cents`` are ``bigint`` columns.
_BIGINT_MAX = 2**63 - 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ID_NAMESPACE = uuid.UUID("6f1d5a8e-3c1b-4f3e-9a52-8d0f6c1e2b7a")
_E = TypeVar("_E", bound=StrEnum)


class CatalogValidationError(ValueError):
    """A catalog resource failed validation; ``details`` maps fields to Lago error codes."""

    def __init__(self, details: Mapping[str, list[str]]):
        self.details = {k: list(v) for k, v in details.items()}
        super().__init__(f"validation errors: {self.details}")


def stable_id(*parts: str) -> str:
    """A deterministic UUID for a resource that was given no id (same input, same id)."""
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)))


@dataclass(frozen=True, slots=True)
class MetricFilter:
    """A property key a charge may filter on, with its allowed values."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BillableMetric:
    """What to aggregate for one event ``code``."""

    organization_id: str
    id: str
    code: str
    name: str
    aggregation_type: AggregationType
    field_name: str | None
    recurring: bool = False
    rounding_function: str | None = None
    rounding_precision: int | None = None
    weighted_interval: str | None = None
    filters: tuple[MetricFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class ChargeFilter:
    """A charge bucket: events whose properties match ``values`` use these ``properties``."""

    id: str
    values: tuple[tuple[str, tuple[str, ...]], ...]
    properties: Mapping[str, Any]
    invoice_display_name: str | None = None


@dataclass(frozen=True, slots=True)
class Charge:
    """A priced use of one billable metric inside a plan."""

    id: str
    billable_metric_code: str
    charge_model: ChargeModel
    properties: Mapping[str, Any]
    filters: tuple[ChargeFilter, ...] = ()
    min_amount_cents: int = 0
    prorated: bool = False
    pay_in_advance: bool = False
    invoice_display_name: str | None = None

    @property
    def pricing_group_keys(self) -> tuple[str, ...]:
        """Property names that split this charge into one fee per distinct group."""
        return tuple(self.properties.get("pricing_group_keys") or ())


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan: an interval, a currency and charges."""

    organization_id: str
    id: str
    code: str
    name: str
    interval: str
    amount_currency: str
    amount_cents: int = 0
    charges: tuple[Charge, ...] = ()


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer, whose timezone defines billing period boundaries."""

    organization_id: str
    id: str
    external_id: str
    name: str = ""
    timezone: str = "UTC"
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A customer's subscription to a plan, active from ``started_at`` until ``terminated_at``."""

    organization_id: str
    id: str
    external_id: str
    external_customer_id: str
    plan_code: str
    started_at: datetime
    billing_time: str = "calendar"
    subscription_at: datetime | None = None
    terminated_at: datetime | None = None
    name: str = ""

    @property
    def started_at_ms(self) -> int:
        """Start as Unix milliseconds, rounded up (exact integer arithmetic, no float)."""
        return -((_EPOCH - self.started_at) // _ONE_MS)

    @property
    def terminated_at_ms(self) -> int | None:
        """Termination as Unix milliseconds (rounded down), or None while active."""
        return None if self.terminated_at is None else (self.terminated_at - _EPOCH) // _ONE_MS


@dataclass(frozen=True, slots=True)
class Catalog:
    """An immutable snapshot of every catalog resource."""

    metrics: tuple[BillableMetric, ...] = ()
    plans: tuple[Plan, ...] = ()
    customers: tuple[Customer, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    version: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# parsing helpers


class _Errors:
    def __init__(self) -> None:
        self.details: dict[str, list[str]] = {}

    def add(self, field_name: str, code: str) -> None:
        self.details.setdefault(field_name, []).append(code)

    def raise_if_any(self) -> None:
        if self.details:
            raise CatalogValidationError(self.details)


def _req_str(obj: Mapping[str, Any], key: str, errors: _Errors) -> str:
    value = obj.get(key)
    if value is None or value == "":
        errors.add(key, "value_is_mandatory")
        return ""
    if not isinstance(value, str):
        errors.add(key, "invalid_type")
        return ""
    if len(value) > MAX_ID_LENGTH:  # codes and ids: keys of Kafka messages and store rows
        errors.add(key, "value_is_too_long")
        return ""
    return value


def _check_ids(obj: Mapping[str, Any], errors: _Errors, *keys: str) -> None:
    """Ids given by the client (``lago_id``, a charge's ``id``) are bounded as codes are."""
    for key in keys:
        value = obj.get(key)
        if value is not None and len(str(value)) > MAX_ID_LENGTH:
            errors.add(key, "value_is_too_long")


def _req_choice(obj: Mapping[str, Any], key: str, allowed: frozenset[str], errors: _Errors) -> str:
    value = _req_str(obj, key, errors)
    if value and value not in allowed:
        errors.add(key, "value_is_invalid")
    return value


def _req_member(
    obj: Mapping[str, Any], key: str, kind: type[_E], errors: _Errors
) -> tuple[str, _E | None]:
    """A required string as :func:`_req_str` reads it, and the ``kind`` member it names: None
    (with ``value_is_invalid`` for a string that names none) when it is not one."""
    value = _req_str(obj, key, errors)
    if not value:
        return value, None
    try:
        return value, kind(value)
    except ValueError:
        errors.add(key, "value_is_invalid")
        return value, None


def _opt_str(obj: Mapping[str, Any], key: str, errors: _Errors) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(key, "invalid_type")
        return None
    return value


def _bool(obj: Mapping[str, Any], key: str, errors: _Errors, default: bool = False) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(key, "invalid_type")
        return default
    return value


def _int(obj: Mapping[str, Any], key: str, errors: _Errors, default: int | None) -> int | None:
    value = obj.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        errors.add(key, "invalid_type")
        return default
    try:
        return int(value)
    except ValueError:
        errors.add(key, "invalid_type")
        return default


def parse_datetime(value: Any) -> datetime:
    """Parse an ISO 8601 / RFC 3339 datetime (naive means UTC) into an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value)
    else:
        raise ValueError(f"not a datetime: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _datetime(obj: Mapping[str, Any], key: str, errors: _Errors) -> datetime | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        moment = parse_datetime(value)
    except (ValueError, TypeError, OverflowError):
        errors.add(key, "invalid_date")
        return None
    if not instant_fits((moment - _EPOCH) // _ONE_MS):  # the store's range (schemas.bounds)
        errors.add(key, "value_is_out_of_range")
        return None
    return moment


def _string_values(raw: Any) -> tuple[str, ...] | None:
    if not isinstance(raw, list) or not raw:
        return None
    out: list[str] = []
    for item in raw:
        text = canonical_string(item)
        if text is None or isinstance(item, dict | list):
            return None
        out.append(text)
    return tuple(out)


# ------------------------------------------------------------------------------------------------
# resources


def parse_billable_metric(obj: Any, organization_id: str) -> BillableMetric:
    """Validate a Lago ``billable_metric`` object."""
    errors = _Errors()
    if not isinstance(obj, Mapping):
        raise CatalogValidationError({"billable_metric": ["invalid_type"]})
    code = _req_str(obj, "code", errors)
    _check_ids(obj, errors, "lago_id")
    name = _opt_str(obj, "name", errors) or code
    agg_text, agg = _req_member(obj, "aggregation_type", AggregationType, errors)
    field_name = _opt_str(obj, "field_name", errors)
    if agg_text and agg != AggregationType.COUNT and not field_name:
        errors.add("field_name", "value_is_mandatory")
    recurring = _bool(obj, "recurring", errors)
    if recurring and agg in NON_RECURRING_TYPES:
        errors.add("recurring", "not_compatible_with_aggregation_type")
    rounding_function = _opt_str(obj, "rounding_function", errors)
    if rounding_function is not None and rounding_function not in ROUNDING_FUNCTIONS:
        errors.add("rounding_function", "value_is_invalid")
    rounding_precision = _int(obj, "rounding_precision", errors, None)
    if rounding_precision is not None and not (
        ROUNDING_PRECISION_RANGE[0] <= rounding_precision <= ROUNDING_PRECISION_RANGE[1]
    ):
        errors.add("rounding_precision", "value_is_out_of_range")
    weighted_interval = _weighted_interval(obj, agg, errors)
    filters = _metric_filters(obj, errors)
    errors.raise_if_any()
    assert agg is not None  # else an error was raised
    metric_id = obj.get("lago_id") or stable_id(organization_id, "metric", code)
    return BillableMetric(
        organization_id=organization_id,
        id=str(metric_id),
        code=code,
        name=name,
        aggregation_type=agg,
        field_name=field_name if agg != AggregationType.COUNT else None,
        recurring=recurring,
        rounding_function=rounding_function,
        rounding_precision=rounding_precision,
        weighted_interval=weighted_interval,
        filters=filters,
    )


def _list(obj: Mapping[str, Any], key: str, errors: _Errors) -> list[Any]:
    """An optional list (missing or null: empty); anything else is ``invalid_type``."""
    value = obj.get(key) or []
    if not isinstance(value, list):
        errors.add(key, "invalid_type")
        return []
    return value


def _weighted_interval(
    obj: Mapping[str, Any], agg: AggregationType | None, errors: _Errors
) -> str | None:
    """``seconds`` (the default, and the only one) for a weighted sum; None for other types."""
    weighted_interval = _opt_str(obj, "weighted_interval", errors)
    if agg != AggregationType.WEIGHTED_SUM:
        return None
    weighted_interval = weighted_interval or "seconds"
    if weighted_interval != "seconds":
        errors.add("weighted_interval", "value_is_invalid")
    return weighted_interval


def _metric_filters(obj: Mapping[str, Any], errors: _Errors) -> tuple[MetricFilter, ...]:
    """A metric's ``filters``: each a non-empty ``key`` and a non-empty list of ``values``."""
    filters: list[MetricFilter] = []
    for raw in _list(obj, "filters", errors):
        key = raw.get("key") if isinstance(raw, Mapping) else None
        values = _string_values(raw.get("values")) if isinstance(raw, Mapping) else None
        if not isinstance(key, str) or not key or values is None:
            errors.add("filters", "invalid_format")
            continue
        filters.append(MetricFilter(key=key, values=values))
    return tuple(filters)


def _parse_charge_filter(
    raw: Any, charge_id: str, index: int, errors: _Errors
) -> ChargeFilter | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("values"), Mapping):
        errors.add("filters", "invalid_format")
        return None
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for key, values in sorted(raw["values"].items()):
        parsed = _string_values(values)
        if not key or parsed is None:
            errors.add("filters", "invalid_format")
            return None
        pairs.append((str(key), parsed))
    if not pairs:
        errors.add("filters", "invalid_format")
        return None
    _check_ids(raw, errors, "lago_id")
    properties = raw.get("properties") or {}
    if not isinstance(properties, Mapping):
        errors.add("filters", "invalid_properties")
        return None
    filter_id = raw.get("lago_id") or stable_id(charge_id, "filter", str(index), repr(pairs))
    return ChargeFilter(
        id=str(filter_id),
        values=tuple(pairs),
        properties=dict(properties),
        invoice_display_name=raw.get("invoice_display_name"),
    )


def parse_charge(
    obj: Any, *, organization_id: str, plan_code: str, index: int, errors: _Errors
) -> Charge | None:
    """Validate one charge of a plan (errors are collected as ``charges`` field errors)."""
    if not isinstance(obj, Mapping):
        errors.add("charges", "invalid_type")
        return None
    local = _Errors()
    metric_code = _req_str(obj, "billable_metric_code", local)
    _check_ids(obj, local, "lago_id", "id")
    _, model = _req_member(obj, "charge_model", ChargeModel, local)
    properties = obj.get("properties") or {}
    if not isinstance(properties, Mapping):
        local.add("properties", "invalid_type")
        properties = {}
    group_keys = properties.get("pricing_group_keys")
    if group_keys is not None and (
        not isinstance(group_keys, list) or not all(isinstance(k, str) and k for k in group_keys)
    ):
        local.add("pricing_group_keys", "invalid_type")
    charge_id = str(
        obj.get("lago_id")
        or obj.get("id")
        or stable_id(organization_id, "charge", plan_code, str(index), metric_code)
    )
    parsed_filters = [
        _parse_charge_filter(raw, charge_id, i, local)
        for i, raw in enumerate(_list(obj, "filters", local))
    ]
    min_amount = _int(obj, "min_amount_cents", local, 0) or 0
    if not 0 <= min_amount <= _BIGINT_MAX:  # Lago: >= 0, and a bigint
        local.add("min_amount_cents", "value_is_out_of_range")
    prorated = _bool(obj, "prorated", local)
    pay_in_advance = _bool(obj, "pay_in_advance", local)
    for key, codes in local.details.items():
        for code in codes:
            errors.add(key, code)
    if local.details:
        return None
    assert model is not None  # else an error was added
    return Charge(
        id=charge_id,
        billable_metric_code=metric_code,
        charge_model=model,
        properties=dict(properties),
        filters=tuple(f for f in parsed_filters if f is not None),
        min_amount_cents=min_amount,
        prorated=prorated,
        pay_in_advance=pay_in_advance,
        invoice_display_name=obj.get("invoice_display_name"),
    )


def parse_plan(obj: Any, organization_id: str) -> Plan:
    """Validate a Lago ``plan`` object with its charges."""
    errors = _Errors()
    if not isinstance(obj, Mapping):
        raise CatalogValidationError({"plan": ["invalid_type"]})
    code = _req_str(obj, "code", errors)
    _check_ids(obj, errors, "lago_id")
    name = _opt_str(obj, "name", errors) or code
    interval = _req_choice(obj, "interval", PLAN_INTERVALS, errors)
    currency = _req_str(obj, "amount_currency", errors)
    amount_cents = _int(obj, "amount_cents", errors, 0) or 0
    if not -_BIGINT_MAX - 1 <= amount_cents <= _BIGINT_MAX:  # Lago: a bigint column
        errors.add("amount_cents", "value_is_out_of_range")
    charges = [
        parse_charge(raw, organization_id=organization_id, plan_code=code, index=i, errors=errors)
        for i, raw in enumerate(_list(obj, "charges", errors))
    ]
    errors.raise_if_any()
    plan_id = obj.get("lago_id") or stable_id(organization_id, "plan", code)
    return Plan(
        organization_id=organization_id,
        id=str(plan_id),
        code=code,
        name=name,
        interval=interval,
        amount_currency=currency.upper(),
        amount_cents=amount_cents,
        charges=tuple(c for c in charges if c is not None),
    )


def charge_metric_errors(charge: Charge, metric: BillableMetric) -> dict[str, list[str]]:
    """Lago's rules between a charge and its billable metric; {} when the pair is allowed.

    Each rule, its field and code are Lago's (getlago/lago-api):

    - ``percentage`` and ``graduated_percentage`` not on ``latest_agg``: ``billable_metric``
      ``invalid_value`` (app/services/charges/validators/percentage_service.rb:23-27,
      graduated_percentage_service.rb:32-36);
    - ``dynamic`` only on ``sum_agg``: ``charge_model`` ``invalid_aggregation_type_or_charge_model``
      (app/models/charge.rb:124-129, ``validate_dynamic``);
    - ``pay_in_advance`` neither on ``volume`` nor on a metric outside
      :data:`PAYABLE_IN_ADVANCE_TYPES`: ``pay_in_advance``
      ``invalid_aggregation_type_or_charge_model`` (charge.rb:131-137);
    - ``prorated`` only as :func:`_may_prorate` says: ``prorated``
      ``invalid_billable_metric_or_charge_model`` (charge.rb:153-167);
    - a positive ``min_amount_cents`` not with ``pay_in_advance``: ``min_amount_cents``
      ``not_compatible_with_pay_in_advance`` (charge.rb:147-151);
    - charge filter values among the metric's filters: :func:`_filter_value_errors`.
    """
    errors = _Errors()
    model, agg = charge.charge_model, metric.aggregation_type
    if model in NOT_ON_LATEST_AGG and agg == AggregationType.LATEST:
        errors.add("billable_metric", "invalid_value")
    if model == ChargeModel.DYNAMIC and agg != AggregationType.SUM:
        errors.add("charge_model", "invalid_aggregation_type_or_charge_model")
    if charge.pay_in_advance and (
        model == ChargeModel.VOLUME or agg not in PAYABLE_IN_ADVANCE_TYPES
    ):
        errors.add("pay_in_advance", "invalid_aggregation_type_or_charge_model")
    if charge.prorated and not _may_prorate(charge, metric):
        errors.add("prorated", "invalid_billable_metric_or_charge_model")
    if charge.pay_in_advance and charge.min_amount_cents > 0:
        errors.add("min_amount_cents", "not_compatible_with_pay_in_advance")
    for field_name, code in _filter_value_errors(charge, metric):
        if code not in errors.details.get(field_name, []):
            errors.add(field_name, code)
    return errors.details


def _may_prorate(charge: Charge, metric: BillableMetric) -> bool:
    """Lago's ``Charge#validate_prorated`` (app/models/charge.rb:153-167): a recurring metric,
    not ``weighted_sum_agg`` (it prorates already); paid in advance: ``standard`` only; in
    arrears: ``standard``, ``volume`` or ``graduated``."""
    if metric.aggregation_type == AggregationType.WEIGHTED_SUM or not metric.recurring:
        return False
    if charge.pay_in_advance:
        return charge.charge_model == ChargeModel.STANDARD
    return charge.charge_model in (ChargeModel.STANDARD, ChargeModel.VOLUME, ChargeModel.GRADUATED)


def _filter_value_errors(charge: Charge, metric: BillableMetric) -> list[tuple[str, str]]:
    """Lago's ``ChargeFilterValue`` (app/models/charge_filter_value.rb:12, 25-32): a key the metric
    does not declare has no ``billable_metric_filter`` (belongs_to: ``relation_must_exist``),
    and values not all among the metric filter's are ``values`` ``value_is_invalid``. Lago's
    ``__ALL_FILTER_VALUES__`` wildcard is not supported (filters match literal values), so it
    is refused as any other undeclared value."""
    declared: dict[str, set[str]] = {}
    for metric_filter in metric.filters:
        declared.setdefault(metric_filter.key, set()).update(metric_filter.values)
    found: list[tuple[str, str]] = []
    for charge_filter in charge.filters:
        for key, values in charge_filter.values:
            if key not in declared:
                found.append(("billable_metric_filter", "relation_must_exist"))
            if not set(values) <= declared.get(key, set()):
                found.append(("values", "value_is_invalid"))
    return found


def parse_customer(obj: Any, organization_id: str) -> Customer:
    """Validate a Lago ``customer`` object."""
    errors = _Errors()
    if not isinstance(obj, Mapping):
        raise CatalogValidationError({"customer": ["invalid_type"]})
    external_id = _req_str(obj, "external_id", errors)
    _check_ids(obj, errors, "lago_id")
    timezone = _opt_str(obj, "timezone", errors) or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        errors.add("timezone", "invalid_timezone")
    currency = _opt_str(obj, "currency", errors)
    errors.raise_if_any()
    customer_id = obj.get("lago_id") or stable_id(organization_id, "customer", external_id)
    return Customer(
        organization_id=organization_id,
        id=str(customer_id),
        external_id=external_id,
        name=_opt_str(obj, "name", errors) or "",
        timezone=timezone,
        currency=currency.upper() if currency else None,
    )


def parse_subscription(obj: Any, organization_id: str, *, now: datetime) -> Subscription:
    """Validate a Lago ``subscription`` object (``started_at`` defaults to ``subscription_at``)."""
    errors = _Errors()
    if not isinstance(obj, Mapping):
        raise CatalogValidationError({"subscription": ["invalid_type"]})
    external_id = _req_str(obj, "external_id", errors)
    _check_ids(obj, errors, "lago_id")
    customer = _req_str(obj, "external_customer_id", errors)
    plan_code = _req_str(obj, "plan_code", errors)
    billing_time = _opt_str(obj, "billing_time", errors) or "calendar"
    if billing_time not in BILLING_TIMES:
        errors.add("billing_time", "value_is_invalid")
    subscription_at = _datetime(obj, "subscription_at", errors)
    started_at = _datetime(obj, "started_at", errors) or subscription_at or now
    terminated_at = _datetime(obj, "terminated_at", errors)
    if terminated_at is not None and terminated_at < started_at:
        errors.add("terminated_at", "cannot_be_before_started_at")
    errors.raise_if_any()
    sub_id = obj.get("lago_id") or stable_id(
        organization_id, "subscription", external_id, started_at.isoformat()
    )
    return Subscription(
        organization_id=organization_id,
        id=str(sub_id),
        external_id=external_id,
        external_customer_id=customer,
        plan_code=plan_code,
        started_at=started_at,
        billing_time=billing_time,
        subscription_at=subscription_at or started_at,
        terminated_at=terminated_at,
        name=_opt_str(obj, "name", errors) or "",
    )
