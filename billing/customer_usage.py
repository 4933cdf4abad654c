"""Price pre-aggregated usage into Lago's ``customer_usage`` response shape (SPEC §7)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from aggregation.units import FeeUsage
from billing.charge_models import compute_amount
from billing.currency import amount_cents, cap_cents
from billing.decimals import CONTEXT
from billing.proration import min_amount_true_up_cents, prorate_min_amount
from billing.rounding import round_units
from billing.usage import ChargeUsage
from schemas.catalog import BillableMetric, Charge, ChargeFilter, Customer, Plan, Subscription
from schemas.numbers import decimal_to_string


@dataclass(frozen=True, slots=True)
class Fee:
    """One priced (charge, filter bucket, group)."""

    charge: Charge
    charge_filter_id: str
    grouped_by: tuple[tuple[str, str | None], ...]
    units: Decimal
    events_count: int
    amount: Decimal
    amount_cents: int


def _buckets(charge: Charge) -> list[tuple[str, tuple[str, ...]]]:
    """Every bucket of a charge with its pricing group keys: each declared filter, then the
    default bucket ``""`` (Lago: Fees::ChargeService#init_fees). A filter groups by its own
    ``pricing_group_keys``, else the charge's, as enrichment does."""
    default = ("", charge.pricing_group_keys)
    return [
        (f.id, tuple(f.properties.get("pricing_group_keys") or charge.pricing_group_keys))
        for f in charge.filters
    ] + [default]


def price_fees(
    plan: Plan,
    metrics: Mapping[str, BillableMetric],
    usages: Sequence[FeeUsage],
    currency: str,
) -> list[Fee]:
    """One fee per (charge, filter bucket, group) with usage, and one per bucket without any.

    As Lago's Fees::ChargeService (app/services/fees/charge_service.rb):

    - every bucket is priced, used or not: each declared filter and the default bucket
      (``init_fees``). A bucket that saw no event gets one fee at 0 units
      (``hydrate_non_persistable_fees`` with the aggregator's ``empty_results``), so a graduated
      or volume first tier's flat fee is due; a grouped bucket's is grouped by each of its
      pricing group keys with a null value (``null_result(grouped_by_keys:)``).
    - units are rounded with the metric's rounding, then priced with the bucket's properties
      (the filter's, or the charge's for the default bucket).
    - a fee whose units or amount is negative gets 0 units and 0 amount (``init_fee``:
      "Prevent trying to create a fee with negative units or amount"); its events_count stays.

    Fees come charge by charge, ordered by (filter id, group) with the default bucket first, as
    this API has always listed them (Lago lists declared filters first, the default last).
    """
    by_bucket: dict[tuple[str, str], list[FeeUsage]] = defaultdict(list)
    for usage in usages:
        by_bucket[(usage.charge_id, usage.charge_filter_id)].append(usage)
    fees: list[Fee] = []
    for charge in plan.charges:
        metric = metrics.get(charge.billable_metric_code)
        if metric is None:
            continue
        filter_props = {f.id: f.properties for f in charge.filters}
        buckets = _buckets(charge)
        known = {bucket for bucket, _keys in buckets}
        # usage of a filter the charge no longer declares keeps its bucket (charge's properties)
        stale = sorted({f for (c, f) in by_bucket if c == charge.id} - known)
        charge_usages: list[FeeUsage] = []
        for bucket, keys in [*buckets, *((f, ()) for f in stale)]:
            charge_usages += by_bucket.get((charge.id, bucket)) or [
                FeeUsage(charge.id, bucket, tuple((k, None) for k in sorted(keys)), Decimal(0), 0)
            ]
        # one bucket is either its groups seen or one null group: None is never compared
        for usage in sorted(charge_usages, key=lambda u: (u.charge_filter_id, u.grouped_by)):
            properties = filter_props.get(usage.charge_filter_id, charge.properties)
            fees.append(_price(charge, metric, properties, usage, currency))
    return fees


def _price(
    charge: Charge,
    metric: BillableMetric,
    properties: Mapping[str, Any],
    usage: FeeUsage,
    currency: str,
) -> Fee:
    units = round_units(usage.units, metric.rounding_function, metric.rounding_precision)
    amount = compute_amount(
        charge.charge_model,
        properties,
        ChargeUsage(
            units=units,
            events_count=usage.events_count,
            event_values=usage.event_values,
            precise_total_amount_cents=usage.precise_total_amount_cents,
            currency=currency,
            aggregation_type=metric.aggregation_type,
        ),
    )
    if units < 0 or amount < 0:
        units = amount = Decimal(0)
    return Fee(
        charge=charge,
        charge_filter_id=usage.charge_filter_id,
        grouped_by=usage.grouped_by,
        units=units,
        events_count=usage.events_count,
        amount=amount,
        amount_cents=amount_cents(amount, currency),
    )


def customer_usage(
    *,
    customer: Customer | None,
    subscription: Subscription,
    plan: Plan,
    metrics: Mapping[str, BillableMetric],
    usages: Sequence[FeeUsage],
    period_from: datetime,
    period_to: datetime,
    full_period: tuple[datetime, datetime] | None = None,
    timezone: str = "UTC",
) -> dict[str, Any]:
    """Lago's ``customer_usage`` object for one subscription and period.

    ``full_period`` is the unclamped period: a charge's ``min_amount_cents`` is prorated by the
    days of ``[period_from, period_to)`` over its days, and a charge whose fees add up to less
    gets a true-up (``true_up_fee``), included in the totals.
    """
    currency = plan.amount_currency
    fees = price_fees(plan, metrics, usages, currency)
    by_charge: dict[str, list[Fee]] = defaultdict(list)
    for fee in fees:
        by_charge[fee.charge.id].append(fee)
    full_from, full_to = full_period or (period_from, period_to)
    charges_usage = []
    total = 0
    for charge_fees in by_charge.values():
        charge = charge_fees[0].charge
        entry = _charge_usage(charge_fees, metrics[charge.billable_metric_code], currency)
        true_up = min_amount_true_up_cents(
            entry["amount_cents"],
            charge.min_amount_cents,
            prorate_min_amount(charge.min_amount_cents, period_from, period_to, full_from,
                               full_to, timezone=timezone),
        )
        entry["min_amount_cents"] = charge.min_amount_cents
        entry["true_up_fee"] = {"amount_cents": true_up} if true_up else None
        total = cap_cents(total + entry["amount_cents"] + true_up)
        charges_usage.append(entry)
    return {
        "from_datetime": _iso(period_from),
        "to_datetime": _iso(period_to),
        "issuing_date": period_to.date().isoformat(),
        "lago_invoice_id": None,
        "currency": currency,
        "amount_cents": total,
        "taxes_amount_cents": 0,
        "total_amount_cents": total,
        "external_subscription_id": subscription.external_id,
        "external_customer_id": customer.external_id if customer else None,
        "charges_usage": charges_usage,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _units(value: Decimal) -> str:
    return decimal_to_string(value)


def _sum_units(fees: Sequence[Fee]) -> str:
    """Σ units, exact (the default context's 28 digits would round Decimal(38, 12) units)."""
    with localcontext(CONTEXT):
        return decimal_to_string(sum((f.units for f in fees), Decimal(0)))


def _charge_usage(fees: list[Fee], metric: BillableMetric, currency: str) -> dict[str, Any]:
    charge = fees[0].charge
    filters_by_id = {f.id: f for f in charge.filters}
    filters = _filters_usage(fees, filters_by_id) if charge.filters else []
    grouped_usage = [
        {
            "amount_cents": f.amount_cents,
            "events_count": f.events_count,
            "units": _units(f.units),
            "total_aggregated_units": _units(f.units),
            "grouped_by": dict(f.grouped_by),
            "lago_charge_filter_id": f.charge_filter_id or None,
            # Lago nests the filter buckets of a group; here a group entry is one bucket
            "filters": [_filter_usage(f, filters_by_id)] if charge.filters else [],
        }
        for f in fees
        if f.grouped_by
    ]
    total_units = _sum_units(fees)
    return {
        "units": total_units,
        "total_aggregated_units": total_units,
        "events_count": sum(f.events_count for f in fees),
        "amount_cents": cap_cents(sum(f.amount_cents for f in fees)),
        "amount_currency": currency,
        "charge": {
            "lago_id": charge.id,
            "charge_model": charge.charge_model,
            "invoice_display_name": charge.invoice_display_name,
        },
        "billable_metric": {
            "lago_id": metric.id,
            "name": metric.name,
            "code": metric.code,
            "aggregation_type": metric.aggregation_type,
        },
        "filters": filters,
        "grouped_usage": grouped_usage,
    }


def _filters_usage(
    fees: list[Fee], filters_by_id: Mapping[str, ChargeFilter]
) -> list[dict[str, Any]]:
    """One entry per filter bucket of a charge with filters (its groups added up), by id."""
    bucket_fees: dict[str, list[Fee]] = defaultdict(list)
    for fee in fees:
        bucket_fees[fee.charge_filter_id].append(fee)
    filters: list[dict[str, Any]] = []
    for filter_id, group in sorted(bucket_fees.items()):
        flt = filters_by_id.get(filter_id)
        units = _sum_units(group)
        filters.append(
            {
                "units": units,
                "total_aggregated_units": units,
                "amount_cents": cap_cents(sum(f.amount_cents for f in group)),
                "events_count": sum(f.events_count for f in group),
                "invoice_display_name": flt.invoice_display_name if flt else None,
                "values": {k: list(v) for k, v in flt.values} if flt else {},
                "lago_charge_filter_id": filter_id or None,
            }
        )
    return filters


def _filter_usage(fee: Fee, filters_by_id: Mapping[str, ChargeFilter]) -> dict[str, Any]:
    flt = filters_by_id.get(fee.charge_filter_id)
    return {
        "units": _units(fee.units),
        "total_aggregated_units": _units(fee.units),
        "amount_cents": fee.amount_cents,
        "events_count": fee.events_count,
        "invoice_display_name": flt.invoice_display_name if flt else None,
        "values": {k: list(v) for k, v in flt.values} if flt else {},
        "lago_charge_filter_id": fee.charge_filter_id or None,
    }
