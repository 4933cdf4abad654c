"""Lago's control-plane API: billable metrics, plans, customers, subscriptions, event lookup.

Request bodies and responses follow Lago's shapes closely enough that the official
``lago-python-client`` works unchanged (its response models are pydantic models with required
fields, so every object here carries what those models require). Errors use Lago's envelope:
400 for malformed JSON or a missing root key, 404 with ``<resource>_not_found``, 422
``validation_errors`` with ``error_details``. :mod:`api.routes` gives each method its path.

One module per resource; what they share is in :mod:`api.lago.common`. Every method is
synchronous (the catalog writes to the store) and scoped to one organization.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from api.lago.billable_metrics import BillableMetrics
from api.lago.common import LagoContext
from api.lago.customers import Customers
from api.lago.events import EventLookup
from api.lago.plans import Plans
from api.lago.subscriptions import Subscriptions
from services.catalog import CatalogService
from sinks.store import UsageStore

__all__ = ["LagoControlApi"]


class LagoControlApi:
    """The handlers of every Lago resource, over one catalog and store."""

    def __init__(
        self, catalog: CatalogService, store: UsageStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        ctx = LagoContext(catalog, store, clock)
        self.billable_metrics = BillableMetrics(ctx)
        self.plans = Plans(ctx)
        self.customers = Customers(ctx)
        self.subscriptions = Subscriptions(ctx)
        self.events = EventLookup(ctx)
