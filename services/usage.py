"""Current and past usage of a subscription: catalog + pre-aggregates + the billing core.

This is also the Python entry point for billing jobs: :meth:`UsageService.usage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aggregation.rollup import BUCKET_MS, bucket_start_ms
from aggregation.units import FeeUsage, Period, prorated_sum, units_for
from aggregation.usage_aggregate import UsageAggregate
from billing import billing_period_bounds, period_days
from billing.customer_usage import customer_usage
from enrichment.catalog_index import CatalogIndex
from schemas.bounds import instant_fits
from schemas.catalog import BillableMetric, Plan
from sinks.store import Store


class UsageNotFound(LookupError):
    """The customer, subscription or plan does not exist; ``code`` is Lago's error code
    (``no_active_subscription``: the subscription has not started yet)."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


class PeriodOutOfRange(ValueError):
    """The asked period is outside the subscription's lifetime or the instants the store can
    hold (:mod:`schemas.bounds`): the caller's error, never a retry."""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class UsageService:
    """Reads pre-aggregated usage and prices it (no raw-event scans, no FINAL)."""

    def __init__(
        self,
        store: Store,
        catalog: Callable[[], CatalogIndex],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.store = store
        self.catalog = catalog
        self.clock = clock

    def usage(
        self,
        organization_id: str,
        external_subscription_id: str,
        *,
        external_customer_id: str | None = None,
        at: datetime | None = None,
        period_index: int = 0,
    ) -> dict[str, Any]:
        """Lago ``customer_usage`` for the period holding ``at`` (default now), shifted by
        ``period_index`` periods (-1 = the previous period)."""
        index = self.catalog()
        sub = index.subscription_by_id(organization_id, external_subscription_id)
        if sub is None:
            raise UsageNotFound("subscription_not_found")
        if external_customer_id is not None and sub.external_customer_id != external_customer_id:
            raise UsageNotFound("customer_not_found")
        plan = index.plans.get((organization_id, sub.plan_code))
        if plan is None:
            raise UsageNotFound("plan_not_found")
        customer = index.customers.get((organization_id, sub.external_customer_id))
        timezone = customer.timezone if customer else "UTC"
        moment = at or self.clock()
        if sub.terminated_at is not None and moment > sub.terminated_at:
            moment = sub.terminated_at
        if moment < sub.started_at:  # pending: no current period yet (Lago: a 405)
            raise UsageNotFound("no_active_subscription")
        try:
            period_from, period_to = billing_period_bounds(
                interval=plan.interval,
                billing_time=sub.billing_time,
                subscription_started_at=sub.started_at,
                subscription_terminated_at=sub.terminated_at,
                timezone=timezone,
                at=moment,
                index=period_index,
            )
        except (ValueError, OverflowError) as exc:  # before the start, or beyond year 9999
            raise PeriodOutOfRange(str(exc)) from exc
        if not (instant_fits(_ms(period_from)) and instant_fits(_ms(period_to) - 1)):
            raise PeriodOutOfRange(f"{period_from} - {period_to}")
        # Buckets are 15 minutes; the subscription id already limits rows to its lifetime, so
        # widening a clamped bound to whole buckets reads exactly this subscription's events.
        from_ms = bucket_start_ms(_ms(period_from))
        to_ms = -(-_ms(period_to) // BUCKET_MS) * BUCKET_MS
        full_from, full_to = billing_period_bounds(
            interval=plan.interval, billing_time=sub.billing_time,
            subscription_started_at=sub.started_at, subscription_terminated_at=None,
            timezone=timezone, at=moment, index=period_index,
            clamp=False,
        )
        period = Period(
            _ms(period_from), _ms(period_to),
            period_days(full_from, full_to, timezone),
        )
        metrics = {
            code: metric
            for (org, code), metric in index.metrics.items()
            if org == organization_id
        }
        usages = self.fee_usages(
            organization_id, sub.id, plan, metrics, from_ms, to_ms, period, timezone=timezone
        )
        return customer_usage(
            customer=customer,
            subscription=sub,
            plan=plan,
            metrics=metrics,
            usages=usages,
            period_from=period_from,
            period_to=period_to,
            full_period=(full_from, full_to),
            timezone=timezone,
        )

    def fee_usages(
        self,
        organization_id: str,
        subscription_id: str,
        plan: Plan,
        metrics: Mapping[str, BillableMetric],
        from_ms: int,
        to_ms: int,
        period: Period,
        *,
        timezone: str = "UTC",
    ) -> list[FeeUsage]:
        """Read the pre-aggregated states each charge's aggregation type needs, as fee usages."""
        charge_metric = {
            c.id: metrics[c.billable_metric_code]
            for c in plan.charges
            if c.billable_metric_code in metrics
        }
        prorated = {
            c.id for c in plan.charges
            if c.prorated and c.id in charge_metric
            and charge_metric[c.id].aggregation_type == "sum_agg" and charge_metric[c.id].recurring
        }
        daily = (
            self.store.read_daily_sums(organization_id, subscription_id, from_ms, to_ms, timezone)
            if prorated else {}
        )
        kinds = {(m.aggregation_type, m.recurring) for m in charge_metric.values()}
        needs_before = any(rec for agg, rec in kinds if agg in ("sum_agg", "weighted_sum_agg"))
        window = _by_key(self.store.read_usage(organization_id, subscription_id, from_ms, to_ms))
        before = (
            _by_key(self.store.read_usage(organization_id, subscription_id, 0, from_ms))
            if needs_before else {}
        )
        unique: dict[bool, dict] = {}
        for agg, recurring in kinds:
            if agg == "unique_count_agg" and recurring not in unique:
                lower = 0 if recurring else from_ms
                unique[recurring] = self.store.read_unique(
                    organization_id, subscription_id, lower, to_ms
                )
        values = (
            self.store.read_event_values(organization_id, subscription_id, from_ms, to_ms)
            if any(c.charge_model == "percentage" for c in plan.charges) else {}
        )
        keys = set(window) | set(before) | {k for u in unique.values() for k in u} | set(values)
        usages = []
        for key in sorted(keys):
            metric = charge_metric.get(key[0])
            if metric is None:
                continue
            agg, recurring = metric.aggregation_type, metric.recurring
            carried = recurring and (key in before or key in unique.get(True, {}))
            if key not in window and not carried:
                continue  # e.g. a non-recurring key seen only before the period
            win = window.get(key)
            if key[0] in prorated:
                carried = before[key].value_sum if key in before else Decimal(0)
                units = prorated_sum(
                    carried,
                    [(date.fromisoformat(d), v) for d, v in daily.get(key, [])],
                    _local_day(period.from_ms, timezone),
                    _local_day(period.to_ms - 1, timezone),
                    period.days,
                )
            else:
                units = units_for(
                    agg, recurring=recurring, window=win, before=before.get(key),
                    unique_present=unique.get(recurring, {}).get(key, (0, 0))[0],
                    period=period,
                )
            usages.append(
                FeeUsage(
                    charge_id=key[0],
                    charge_filter_id=key[1],
                    grouped_by=key[2],
                    units=units,
                    events_count=win.events_count if win else 0,
                    event_values=values.get(key, ()),
                    precise_total_amount_cents=(
                        win.precise_total_amount_cents if win else Decimal(0)
                    ),
                )
            )
        return usages


def _local_day(ms: int, timezone: str) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(timezone)).date()


def _by_key(aggregates: list[UsageAggregate]) -> dict[tuple, UsageAggregate]:
    return {(a.charge_id, a.charge_filter_id, a.grouped_by): a for a in aggregates}
