"""Current and past usage of a subscription: catalog + pre-aggregates + the billing core.

This is also the Python entry point for billing jobs: :meth:`UsageService.usage`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aggregation.rollup import BUCKET_MS, bucket_start_ms
from billing import billing_period_bounds
from billing.customer_usage import customer_usage
from enrichment.catalog_index import CatalogIndex
from sinks.store import Store


class UsageNotFound(LookupError):
    """The customer, subscription or plan does not exist; ``code`` is Lago's error code."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


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
        moment = at or self.clock()
        if sub.terminated_at is not None and moment > sub.terminated_at:
            moment = sub.terminated_at
        period_from, period_to = billing_period_bounds(
            interval=plan.interval,
            billing_time=sub.billing_time,
            subscription_started_at=sub.started_at,
            subscription_terminated_at=sub.terminated_at,
            timezone=customer.timezone if customer else "UTC",
            at=moment,
            index=period_index,
        )
        # Buckets are 15 minutes; the subscription id already limits rows to its lifetime, so
        # widening a clamped bound to whole buckets reads exactly this subscription's events.
        from_ms = bucket_start_ms(_ms(period_from))
        to_ms = -(-_ms(period_to) // BUCKET_MS) * BUCKET_MS
        aggregates = self.store.read_usage(organization_id, sub.id, from_ms, to_ms)
        metrics = {
            code: metric
            for (org, code), metric in index.metrics.items()
            if org == organization_id
        }
        return customer_usage(
            customer=customer,
            subscription=sub,
            plan=plan,
            metrics=metrics,
            aggregates=aggregates,
            period_from=period_from,
            period_to=period_to,
        )
