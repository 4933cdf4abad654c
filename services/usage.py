"""Current and past usage of a subscription: catalog + pre-aggregates + the billing core.

This is also the Python entry point for billing jobs: :meth:`UsageService.usage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aggregation.rollup import BUCKET_MS, bucket_start_ms
from aggregation.units import FeeUsage, Period, prorated_sum, units_for
from aggregation.usage_aggregate import UsageAggregate
from billing import period_days, subscription_period_bounds
from billing.customer_usage import customer_usage
from enrichment.catalog_index import CatalogIndex
from schemas.bounds import instant_fits
from schemas.catalog import BillableMetric, Customer, Plan, Subscription
from sinks.store import UsageStore


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
        store: UsageStore,
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
        sub, plan, customer = _subscription(
            index, organization_id, external_subscription_id, external_customer_id
        )
        timezone = customer.timezone if customer else "UTC"
        moment = at or self.clock()
        if sub.terminated_at is not None and moment > sub.terminated_at:
            moment = sub.terminated_at
        if moment < sub.started_at:  # pending: no current period yet (Lago: a 405)
            raise UsageNotFound("no_active_subscription")
        bounds = _Bounds.of(sub, plan, timezone, moment, period_index)
        metrics = {
            code: metric
            for (org, code), metric in index.metrics.items()
            if org == organization_id
        }
        usages = self.fee_usages(
            organization_id, sub.id, plan, metrics, bounds.from_ms, bounds.to_ms, bounds.period,
            timezone=timezone,
        )
        return customer_usage(
            customer=customer,
            subscription=sub,
            plan=plan,
            metrics=metrics,
            usages=usages,
            period_from=bounds.period_from,
            period_to=bounds.period_to,
            full_period=bounds.full_period,
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
        states = self._read_states(organization_id, subscription_id, plan, charge_metric,
                                   prorated=bool(prorated), from_ms=from_ms, to_ms=to_ms,
                                   timezone=timezone)
        usages = []
        for key in sorted(states.keys()):
            metric = charge_metric.get(key[0])
            if metric is None:
                continue
            carried = metric.recurring and (key in states.before
                                            or key in states.unique.get(True, {}))
            if key not in states.window and not carried:
                continue  # e.g. a non-recurring key seen only before the period
            if key[0] in prorated:
                units = _prorated_units(states, key, period, timezone)
            else:
                units = units_for(
                    metric.aggregation_type, recurring=metric.recurring,
                    window=states.window.get(key), before=states.before.get(key),
                    unique_present=states.unique.get(metric.recurring, {}).get(key, (0, 0))[0],
                    period=period,
                )
            usages.append(_fee_usage(key, units, states))
        return usages

    def _read_states(
        self, organization_id: str, subscription_id: str, plan: Plan,
        charge_metric: Mapping[str, BillableMetric], *, prorated: bool, from_ms: int, to_ms: int,
        timezone: str,
    ) -> _States:
        """The stored states the charges need: the period's, what came before it (recurring
        sums), unique values, percentage event values and daily sums (prorated charges)."""
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
        return _States(window, before, unique, values, daily)


@dataclass(frozen=True)
class _States:
    """Stored states of one subscription for one period, by (charge, filter, group)."""

    window: dict[tuple, UsageAggregate]
    before: dict[tuple, UsageAggregate]
    unique: dict[bool, dict]  # by ``recurring``
    values: dict
    daily: dict

    def keys(self) -> set[tuple]:
        return (set(self.window) | set(self.before)
                | {k for u in self.unique.values() for k in u} | set(self.values))


def _prorated_units(states: _States, key: tuple, period: Period, timezone: str) -> Decimal:
    """Units of a prorated recurring ``sum_agg`` charge: each day's level, pro rata."""
    carried = states.before[key].value_sum if key in states.before else Decimal(0)
    return prorated_sum(
        carried,
        [(date.fromisoformat(d), v) for d, v in states.daily.get(key, [])],
        _local_day(period.from_ms, timezone),
        _local_day(period.to_ms - 1, timezone),
        period.days,
    )


def _fee_usage(key: tuple, units: Decimal, states: _States) -> FeeUsage:
    win = states.window.get(key)
    return FeeUsage(
        charge_id=key[0],
        charge_filter_id=key[1],
        grouped_by=key[2],
        units=units,
        events_count=win.events_count if win else 0,
        event_values=states.values.get(key, ()),
        precise_total_amount_cents=win.precise_total_amount_cents if win else Decimal(0),
    )


def _subscription(
    index: CatalogIndex, organization_id: str, external_subscription_id: str,
    external_customer_id: str | None,
) -> tuple[Subscription, Plan, Customer | None]:
    """The subscription, its plan and customer; :class:`UsageNotFound` when one is missing."""
    sub = index.subscription_by_id(organization_id, external_subscription_id)
    if sub is None:
        raise UsageNotFound("subscription_not_found")
    if external_customer_id is not None and sub.external_customer_id != external_customer_id:
        raise UsageNotFound("customer_not_found")
    plan = index.plans.get((organization_id, sub.plan_code))
    if plan is None:
        raise UsageNotFound("plan_not_found")
    return sub, plan, index.customers.get((organization_id, sub.external_customer_id))


@dataclass(frozen=True)
class _Bounds:
    """The asked billing period: clamped to the subscription's lifetime, as whole buckets to
    read, and the full (unclamped) period proration counts days of."""

    period_from: datetime
    period_to: datetime
    full_period: tuple[datetime, datetime]
    from_ms: int
    to_ms: int
    period: Period

    @classmethod
    def of(cls, sub: Subscription, plan: Plan, timezone: str, moment: datetime,
           period_index: int) -> _Bounds:
        try:
            period_from, period_to = subscription_period_bounds(
                sub, plan, timezone, moment, index=period_index)
        except (ValueError, OverflowError) as exc:  # before the start, or beyond year 9999
            raise PeriodOutOfRange(str(exc)) from exc
        if not (instant_fits(_ms(period_from)) and instant_fits(_ms(period_to) - 1)):
            raise PeriodOutOfRange(f"{period_from} - {period_to}")
        full_from, full_to = subscription_period_bounds(
            sub, plan, timezone, moment, index=period_index, clamp=False)
        # Buckets are 15 minutes; the subscription id already limits rows to its lifetime, so
        # widening a clamped bound to whole buckets reads exactly this subscription's events.
        return cls(
            period_from, period_to, (full_from, full_to),
            from_ms=bucket_start_ms(_ms(period_from)),
            to_ms=-(-_ms(period_to) // BUCKET_MS) * BUCKET_MS,
            period=Period(_ms(period_from), _ms(period_to),
                          period_days(full_from, full_to, timezone)),
        )


def _local_day(ms: int, timezone: str) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(timezone)).date()


def _by_key(aggregates: list[UsageAggregate]) -> dict[tuple, UsageAggregate]:
    return {(a.charge_id, a.charge_filter_id, a.grouped_by): a for a in aggregates}
