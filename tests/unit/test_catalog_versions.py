"""An event is enriched with the metric and plan versions in force at its timestamp."""

from __future__ import annotations

from datetime import UTC, datetime

from enrichment.catalog_index import CatalogIndex
from enrichment.enricher import Rejection, enrich
from schemas.event import UsageEvent
from services.catalog import CatalogService
from sinks.memory_store import MemoryStore

ORG = "org"
DAY = 86_400_000


def ms(day: int) -> int:
    return int(datetime(2026, 11, day, tzinfo=UTC).timestamp() * 1000)


def usage_event(day: int, properties: dict) -> UsageEvent:
    return UsageEvent(ORG, "s", "gb", f"t-{day}", ms(day) + 1, properties, None)


def service_with_history() -> CatalogService:
    """v1 on Nov 1 (field a, amount 1), v2 on Nov 10 (field b, amount 2), deleted Nov 20."""
    today = [1]
    service = CatalogService(
        MemoryStore(), clock=lambda: datetime(2026, 11, today[0], tzinfo=UTC)
    )  # type: ignore[arg-type]

    def plan(amount: str) -> dict:
        return {"code": "p", "interval": "monthly", "amount_currency": "EUR",
                "charges": [{"billable_metric_code": "gb", "charge_model": "standard",
                             "properties": {"amount": amount}}]}

    service.apply(ORG, "billable_metric", {"code": "gb", "aggregation_type": "sum_agg",
                                           "field_name": "a"})
    service.apply(ORG, "plan", plan("1"))
    service.apply(ORG, "customer", {"external_id": "c"})
    service.apply(ORG, "subscription", {"external_id": "s", "external_customer_id": "c",
                                        "plan_code": "p", "started_at": "2026-01-01T00:00:00Z"})
    today[0] = 10
    service.apply(ORG, "billable_metric", {"code": "gb", "aggregation_type": "sum_agg",
                                           "field_name": "b"})
    service.apply(ORG, "plan", plan("2"))
    today[0] = 20
    service.delete(ORG, "billable_metric", "gb")
    return service


def test_each_event_uses_the_versions_in_force_at_its_timestamp():
    index = service_with_history().index
    before = enrich(usage_event(5, {"a": 3, "b": 7}), index)
    after = enrich(usage_event(15, {"a": 3, "b": 7}), index)
    assert not isinstance(before, Rejection) and not isinstance(after, Rejection)
    assert before[0].value == "3" and after[0].value == "7"
    plan_then = index.plan_at(ORG, "p", ms(5))
    plan_now = index.plan_at(ORG, "p", ms(15))
    assert plan_then.charges[0].properties["amount"] == "1"
    assert plan_now.charges[0].properties["amount"] == "2"
    # the same charge id across plan versions: usage keeps adding up in one fee
    assert before[0].charge_id == after[0].charge_id


def test_a_deleted_metric_rejects_later_events_but_not_earlier_ones():
    index = service_with_history().index
    late = enrich(usage_event(25, {"b": 1}), index)
    assert isinstance(late, Rejection) and late.code == "unknown_metric"
    assert not isinstance(enrich(usage_event(12, {"b": 1}), index), Rejection)
    assert ("org", "gb") not in index.metrics  # the current catalog no longer lists it


def test_events_older_than_the_first_version_use_it_for_backfills():
    index = service_with_history().index
    backfill = enrich(
        UsageEvent(ORG, "s", "gb", "old", ms(1) - 30 * DAY, {"a": 4}, None), index
    )
    assert not isinstance(backfill, Rejection) and backfill[0].value == "4"


def test_history_survives_a_reload():
    service = service_with_history()
    reloaded = CatalogService(service.store)
    reloaded.load()
    assert enrich(usage_event(5, {"a": 3}), reloaded.index)[0].value == "3"  # type: ignore[index]
    assert isinstance(reloaded.index, CatalogIndex) and reloaded.version == 1
