"""Catalog inputs the store or the catalog topic cannot hold are 422s (issue 16, findings 6, 8):
ids over schemas.bounds.MAX_ID_LENGTH, instants outside its range, and changes whose catalog-topic
message would be over the topic's size, refused before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas.bounds import MAX_ID_LENGTH
from schemas.catalog import (
    CatalogValidationError,
    parse_billable_metric,
    parse_customer,
    parse_plan,
    parse_subscription,
)
from services.catalog import CatalogService
from sinks.memory_store import MemoryStore
from sinks.store import CatalogDoc
from streams.catalog_topic import (
    MAX_MESSAGE_BYTES,
    check_publishable,
    decode_history,
    encode_version,
)

ORG = "org-1"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LONG = "x" * (MAX_ID_LENGTH + 1)
FITS = "x" * MAX_ID_LENGTH


def details(parse, obj) -> dict:
    with pytest.raises(CatalogValidationError) as raised:
        parse(obj)
    return raised.value.details


METRIC = {"code": "m", "aggregation_type": "count_agg"}
PLAN = {"code": "p", "interval": "monthly", "amount_currency": "EUR",
        "charges": [{"billable_metric_code": "m", "charge_model": "standard",
                     "properties": {"amount": "1"}}]}
SUB = {"external_id": "s", "external_customer_id": "c", "plan_code": "p"}


def metric(obj):
    return parse_billable_metric(obj, ORG)


def plan(obj):
    return parse_plan(obj, ORG)


def customer(obj):
    return parse_customer(obj, ORG)


def subscription(obj):
    return parse_subscription(obj, ORG, now=NOW)


@pytest.mark.parametrize(
    ("parse", "obj", "field"),
    [
        (metric, {**METRIC, "code": LONG}, "code"),
        (metric, {**METRIC, "lago_id": LONG}, "lago_id"),
        (plan, {**PLAN, "code": LONG}, "code"),
        (plan, {**PLAN, "charges": [{**PLAN["charges"][0], "billable_metric_code": LONG}]},
         "billable_metric_code"),
        (plan, {**PLAN, "charges": [{**PLAN["charges"][0], "id": LONG}]}, "id"),
        (customer, {"external_id": LONG}, "external_id"),
        (subscription, {**SUB, "external_id": "x" * 900_000}, "external_id"),
        (subscription, {**SUB, "external_customer_id": LONG}, "external_customer_id"),
        (subscription, {**SUB, "plan_code": LONG}, "plan_code"),
        (subscription, {**SUB, "lago_id": LONG}, "lago_id"),
    ],
)
def test_ids_longer_than_the_bound_are_value_is_too_long(parse, obj, field):
    # before: a 900 KB subscription id was accepted, then broke every request that used it
    assert details(parse, obj) == {field: ["value_is_too_long"]}


@pytest.mark.parametrize("zone", ["x" * 300, "\x00", "../etc/passwd", "Mars/Base"])
def test_unknown_timezones_are_invalid_timezone(zone):
    # a name too long for a file path raised OSError from ZoneInfo: a 500 (found by the fuzz test)
    assert details(customer, {"external_id": "c", "timezone": zone}) == {
        "timezone": ["invalid_timezone"]}


def test_ids_at_the_bound_are_accepted():
    assert metric({**METRIC, "code": FITS}).code == FITS
    assert subscription({**SUB, "external_id": FITS}).external_id == FITS


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subscription_at", "9999-12-31T00:00:00Z"),
        ("started_at", "2100-01-01T00:00:00Z"),
        ("started_at", "1969-12-31T23:59:59Z"),
        ("terminated_at", "3000-01-01T00:00:00+00:00"),
    ],
)
def test_catalog_instants_outside_the_stores_range_are_value_is_out_of_range(field, value):
    # before: a subscription starting 9999-12-31 was stored, and usage reads answered 503
    assert details(subscription, {**SUB, field: value}) == {field: ["value_is_out_of_range"]}


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "not a date", 5])
def test_unreadable_instants_are_invalid_date(value):
    assert details(subscription, {**SUB, "started_at": value}) == {"started_at": ["invalid_date"]}


def test_catalog_instants_inside_the_range_are_accepted():
    sub = subscription({**SUB, "subscription_at": "2099-12-31T23:59:59Z",
                        "terminated_at": "2099-12-31T23:59:59.999Z"})
    assert sub.started_at.year == 2099
    assert subscription({**SUB, "started_at": "1970-01-01T00:00:00Z"}).started_at_ms == 0


# --- the catalog topic -----------------------------------------------------------------------
def doc(body: dict, version: int = 1) -> CatalogDoc:
    return CatalogDoc(ORG, "billable_metric", "m", orjson.dumps(body).decode(), False, version,
                      1_700_000_000_000)


def test_one_message_per_version_round_trips():
    first, second = doc({"code": "m", "v": 1}, 1), doc({"code": "m", "v": 2}, 2)
    (k1, v1), (k2, v2) = encode_version(first), encode_version(second)
    assert k1 != k2  # compaction keeps every version
    assert decode_history(v1) + decode_history(v2) == [first, second]


def test_a_version_too_large_for_the_topic_is_refused():
    # quotes double in the message (the body is a JSON string inside it)
    huge = doc({"code": "m", "description": '"' * (MAX_MESSAGE_BYTES // 2)})
    with pytest.raises(CatalogValidationError) as raised:
        check_publishable([doc({"code": "m"}), huge])
    assert raised.value.details == {"billable_metric": ["value_is_too_long"]}
    check_publishable([doc({"code": "m", "description": "x" * (MAX_MESSAGE_BYTES - 1000)})])


def test_a_refused_change_writes_nothing():
    # before: the store and this worker took the change, the topic dropped it, the API said 200
    store = MemoryStore()
    catalog = CatalogService(store, clock=lambda: NOW)  # type: ignore[arg-type]
    catalog.checks.append(check_publishable)
    published: list = []
    catalog.listeners.append(published.append)
    catalog.apply(ORG, "billable_metric", METRIC)
    version = catalog.version
    big = {**METRIC, "code": "big", "description": '"' * MAX_MESSAGE_BYTES}
    with pytest.raises(CatalogValidationError):
        catalog.apply_many(ORG, [("billable_metric", {**METRIC, "code": "ok"}),
                                 ("billable_metric", big)])
    assert [d.key for d in store.docs] == ["m"]
    assert catalog.version == version and catalog.get(ORG, "billable_metric", "ok") is None
    assert len(published) == 1
