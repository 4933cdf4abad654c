"""Issue 16 at the HTTP edge: numbers exact from the first byte, inputs bounded
(schemas.bounds) with a 422 before anything is published. Same style as test_api.py, whose
``api_and_publisher`` fixture the tests take as an argument."""
# ruff: noqa: F811

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from faust.utils import json as faust_json

from api.lago import LagoControlApi
from schemas import exact_json
from schemas.bounds import MAX_EVENT_BYTES
from schemas.event import event_to_json_dict, parse_event
from services.catalog import CatalogService
from sinks.memory_store import MemoryStore
from tests.unit.test_api import NOW_MS, api_and_publisher, run  # noqa: F401 (a fixture)

GOOD = (b'{"transaction_id":"t","external_subscription_id":"s","code":"c",'
        b'"timestamp":1795000000.5,"properties":{"gb":12345678.123456789012,'
        b'"big":1180591620717411303424,"tiny":1E-400,"name":"x"}}')


def event_body(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {"transaction_id": "t", "external_subscription_id": "s",
                               "code": "c"}
    body.update(fields)
    return body


def test_event_numbers_are_published_and_answered_with_every_digit(api_and_publisher):
    api, publisher = api_and_publisher
    response = run(api.post_event("org-1", b'{"event":' + GOOD + b"}"))
    assert response.status == 200
    ((_, value),) = publisher.records
    # orjson read 12345678.12345679 and 1.1805916207174113e+21 before (issue 16 finding 5)
    assert b'"gb":12345678.123456789012' in value
    assert b'"big":1180591620717411303424' in value
    assert b'"tiny":1E-400' in value
    sent = parse_event(exact_json.loads(value), now_ms=0)
    assert sent.properties == {"gb": Decimal("12345678.123456789012"), "big": 2**70,
                               "tiny": Decimal("1E-400"), "name": "x"}
    # the Lago-shaped answer, written as Faust writes responses (orjson + on_default)
    answer = orjson.loads(faust_json.dumps(response.body))["event"]["properties"]
    wire = faust_json.dumps(response.body)
    assert b'"gb":12345678.123456789012' in wire and b'"big":1180591620717411303424' in wire
    assert answer["name"] == "x"


def test_batch_numbers_are_exact(api_and_publisher):
    api, publisher = api_and_publisher
    run(api.post_events_batch("org-1", b'{"events":[' + GOOD + b"]}"))
    ((_, value),) = publisher.records
    assert b'"gb":12345678.123456789012' in value


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"precise_total_amount_cents": "1e400"}, "precise_total_amount_cents",
         "value_is_out_of_range"),
        ({"precise_total_amount_cents": 10**26}, "precise_total_amount_cents",
         "value_is_out_of_range"),
        ({"timestamp": 4_102_444_800}, "timestamp", "value_is_out_of_range"),
        ({"timestamp": "1969-12-31T23:59:59Z"}, "timestamp", "value_is_out_of_range"),
        ({"timestamp": "9999-12-31T00:00:00Z"}, "timestamp", "value_is_out_of_range"),
        ({"external_subscription_id": "s" * 257}, "external_subscription_id",
         "value_is_too_long"),
        ({"code": "c" * 257}, "code", "value_is_too_long"),
        ({"transaction_id": "t" * 257}, "transaction_id", "value_is_too_long"),
    ],
)
def test_values_the_store_cannot_hold_are_422_and_not_published(
    api_and_publisher, fields, field, code
):
    api, publisher = api_and_publisher
    response = run(api.post_event("org-1", exact_json.dumps({"event": event_body(**fields)})))
    assert (response.status, response.body["code"]) == (422, "validation_errors")
    assert response.body["error_details"] == {field: [code]}
    batch = run(api.post_events_batch(
        "org-1", exact_json.dumps({"events": [event_body(), event_body(**fields)]})
    ))
    assert batch.status == 422
    assert batch.body["error_details"] == {"1": {field: [code]}}
    assert publisher.records == []


def test_a_json_number_1e400_amount_is_value_out_of_range(api_and_publisher):
    api, publisher = api_and_publisher
    body = (b'{"event":{"transaction_id":"t","external_subscription_id":"s","code":"c",'
            b'"precise_total_amount_cents":1e400}}')
    response = run(api.post_event("org-1", body))
    assert response.status == 422
    details = response.body["error_details"]
    assert details == {"precise_total_amount_cents": ["value_is_out_of_range"]}
    assert publisher.records == []


def test_an_organization_id_over_256_characters_is_too_long(api_and_publisher):
    api, publisher = api_and_publisher
    response = run(api.post_event("o" * 257, orjson.dumps({"event": event_body()})))
    assert response.status == 422
    assert response.body["error_details"] == {"organization_id": ["value_is_too_long"]}
    assert publisher.records == []


def padded(total: int) -> dict[str, object]:
    """An event whose raw-topic JSON (what the API publishes) is ``total`` bytes long."""
    event = event_body(properties={"pad": ""})
    parsed = parse_event(event, now_ms=NOW_MS, organization_id="org-1")
    size = len(exact_json.dumps(event_to_json_dict(parsed)))
    return event_body(properties={"pad": "x" * (total - size)})


def test_an_event_over_max_event_bytes_is_rejected_before_publishing(api_and_publisher):
    api, publisher = api_and_publisher
    too_large = padded(MAX_EVENT_BYTES + 1)
    response = run(api.post_event("org-1", orjson.dumps({"event": too_large})))
    assert (response.status, response.body["code"]) == (422, "validation_errors")
    assert response.body["error_details"] == {"event": ["value_is_too_long"]}
    batch = run(api.post_events_batch(
        "org-1", orjson.dumps({"events": [event_body(), too_large, event_body()]})
    ))
    assert batch.status == 422
    assert batch.body["error_details"] == {"1": {"event": ["value_is_too_long"]}}
    assert publisher.records == []  # the whole batch is rejected


def test_an_event_of_exactly_max_event_bytes_is_published(api_and_publisher):
    api, publisher = api_and_publisher
    response = run(api.post_event("org-1", orjson.dumps({"event": padded(MAX_EVENT_BYTES)})))
    assert response.status == 200
    ((_, value),) = publisher.records
    assert len(value) == MAX_EVENT_BYTES


def test_catalog_numbers_are_stored_with_every_digit(api_and_publisher):
    api, _ = api_and_publisher
    body = (b'{"catalog":{"billable_metrics":[{"code":"gb","name":"GB",'
            b'"aggregation_type":"sum_agg","field_name":"gb"}],'
            b'"plans":[{"code":"p","name":"P","interval":"monthly","amount_cents":0,'
            b'"amount_currency":"EUR","charges":[{"billable_metric_code":"gb",'
            b'"charge_model":"standard","properties":{"amount":0.123456789012345678}}]}]}}')
    response = api.apply_catalog("org-1", body)
    assert response.status == 200, response.body
    stored = api.catalog.body("org-1", "plan", "p")
    assert stored["charges"][0]["properties"]["amount"] == Decimal("0.123456789012345678")


def test_lago_plan_bodies_are_decoded_exactly():
    store = MemoryStore()
    catalog = CatalogService(store)  # type: ignore[arg-type]
    control = LagoControlApi(catalog, store)  # type: ignore[arg-type]
    metric = b'{"billable_metric":{"code":"gb","name":"GB","aggregation_type":"sum_agg",' \
             b'"field_name":"gb"}}'
    assert control.billable_metrics.create("org-1", metric).status == 200
    plan = (b'{"plan":{"code":"p","name":"P","interval":"monthly","amount_cents":0,'
            b'"amount_currency":"EUR","charges":[{"billable_metric_code":"gb",'
            b'"charge_model":"standard","properties":{"amount":0.123456789012345678}}]}}')
    response = control.plans.create("org-1", plan)
    assert response.status == 200, response.body
    (charge,) = catalog.body("org-1", "plan", "p")["charges"]
    assert charge["properties"]["amount"] == Decimal("0.123456789012345678")
    # the stored document is exact too: a restart reads the same digits
    (doc,) = [d for d in store.docs if d.kind == "plan"]
    assert '"amount":0.123456789012345678' in doc.body
    restarted = CatalogService(store)  # type: ignore[arg-type]
    restarted.load()
    (charge,) = restarted.body("org-1", "plan", "p")["charges"]
    assert charge["properties"]["amount"] == Decimal("0.123456789012345678")


def test_a_catalog_integer_beyond_64_bits_is_422_not_a_500():
    """Exact decoding keeps 2**70 an int; no Lago field holds one, and an answer echoing it
    could not be written (orjson refuses integers beyond 64 bits): refused, nothing stored."""
    store = MemoryStore()
    control = LagoControlApi(CatalogService(store), store)  # type: ignore[arg-type]
    body = (b'{"billable_metric":{"code":"m","name":"M","aggregation_type":"count_agg",'
            b'"description":1180591620717411303424}}')
    response = control.billable_metrics.create("org-1", body)
    assert (response.status, response.body["code"]) == (422, "validation_errors")
    assert response.body["error_details"] == {"billable_metric": ["value_is_out_of_range"]}
    assert store.docs == []
    ok = control.billable_metrics.create("org-1", body.replace(b"1180591620717411303424",
                                                              b"18446744073709551615"))
    assert ok.status == 200
    faust_json.dumps(ok.body)  # the answer can be written
