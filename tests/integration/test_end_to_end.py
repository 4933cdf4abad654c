"""Kafka in, priced usage out: the real broker, a real `meterline up`, the chdb engine."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import Producer

from meterline.client import ApiError

pytestmark = pytest.mark.integration

ORG = "default"

CATALOG = {
    "billable_metrics": [
        {"code": "calls", "aggregation_type": "count_agg"},
        {
            "code": "gb",
            "aggregation_type": "sum_agg",
            "field_name": "gb",
            "filters": [{"key": "region", "values": ["eu", "us"]}],
        },
    ],
    "plans": [
        {
            "code": "pro",
            "interval": "monthly",
            "amount_currency": "EUR",
            "charges": [
                {
                    "billable_metric_code": "calls",
                    "charge_model": "graduated",
                    "properties": {
                        "graduated_ranges": [
                            {"from_value": 0, "to_value": 10, "per_unit_amount": "1.00",
                             "flat_amount": "0"},
                            {"from_value": 10, "to_value": None, "per_unit_amount": "0.50",
                             "flat_amount": "2"},
                        ]
                    },
                },
                {
                    "billable_metric_code": "gb",
                    "charge_model": "standard",
                    "properties": {"amount": "0.10"},
                    "filters": [{"values": {"region": ["eu"]}, "properties": {"amount": "0.20"}}],
                },
            ],
        }
    ],
    "customers": [{"external_id": "c1", "timezone": "Europe/Paris", "currency": "EUR"}],
    "subscriptions": [
        {"external_id": "s1", "external_customer_id": "c1", "plan_code": "pro",
         "started_at": "2026-01-01T00:00:00Z"}
    ],
}


def produce(bootstrap: str, topic: str, values: list[bytes], sub: str = "s1") -> None:
    """Write raw messages straight to the raw topic, keyed as SPEC §1 says."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for value in values:
        producer.produce(topic, key=f"{ORG}-{sub}".encode(), value=value)
    assert producer.flush(30) == 0


def event(txn: str, code: str, sub: str = "s1", **properties: object) -> bytes:
    return orjson.dumps({
        "organization_id": ORG, "transaction_id": txn, "external_subscription_id": sub,
        "code": code, "properties": properties,
    })


def usage(stack) -> dict:
    return stack.client.get(
        "/api/v1/customers/c1/current_usage?external_subscription_id=s1"
    )["customer_usage"]


def charge(usage_doc: dict, code: str) -> dict:
    return next(c for c in usage_doc["charges_usage"] if c["billable_metric"]["code"] == code)


def test_kafka_to_priced_usage_with_dead_letters_duplicates_and_restart(
    stack_factory, kafka_bootstrap
):
    stack = stack_factory().start()
    stack.client.post("/api/v1/meterline/catalog", {"catalog": CATALOG})

    good = [event(f"c-{i}", "calls") for i in range(15)]
    duplicate = [event("c-3", "calls")]
    storage = [event("g-1", "gb", gb=1.5, region="eu"), event("g-2", "gb", gb="2.25", region="eu"),
               event("g-3", "gb", gb=4, region="us")]
    bad = [
        b"{not json",
        event("b-1", "nope"),
        event("b-2", "gb", gb="abc", region="eu"),
        event("b-3", "calls", sub="s-missing"),
        orjson.dumps({"organization_id": ORG, "external_subscription_id": "s1", "code": "calls"}),
    ]
    produce(kafka_bootstrap, stack.topic, good + duplicate + storage + bad)
    status = stack.wait_consumed(24)

    assert status["reconciled"] is True
    (partition,) = [p for p in status["partitions"] if p["consumed"]]
    assert (partition["stored"], partition["duplicates"], partition["dead_letters"]) == (18, 1, 5)
    assert status["pipeline"]["by_reason"] == {
        "invalid_json": 1, "unknown_metric": 1, "invalid_value": 1, "no_subscription": 1,
        "invalid_event": 1,
    }

    import urllib.request

    with urllib.request.urlopen(stack.client.url + "/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        exposition = resp.read().decode()
    assert 'meterline_messages_total{outcome="stored",partition=' in exposition
    stored = sum(
        float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
        if line.startswith("meterline_messages_total{") and 'outcome="stored"' in line
    )
    assert stored == 18
    assert 'meterline_dead_letters_total{reason="no_subscription"} 1.0' in exposition

    doc = usage(stack)
    calls = charge(doc, "calls")
    # graduated: 10 units × 1.00 = 10.00; tier 2 flat 2.00 + 5 × 0.50 = 4.50 → 14.50 EUR
    assert (calls["units"], calls["events_count"], calls["amount_cents"]) == ("15", 15, 1450)
    gb = charge(doc, "gb")
    # eu filter: (1.5 + 2.25) × 0.20 = 0.75; default bucket: 4 × 0.10 = 0.40
    assert gb["units"] == "7.75" and gb["amount_cents"] == 115
    by_values = {tuple(f["values"].get("region", [])): f for f in gb["filters"]}
    assert by_values[("eu",)]["amount_cents"] == 75 and by_values[("eu",)]["units"] == "3.75"
    assert by_values[()]["amount_cents"] == 40
    assert doc["amount_cents"] == 1565 and doc["currency"] == "EUR"
    # Europe/Paris month: starts at local midnight (UTC+1 in November)
    assert doc["from_datetime"].endswith("T23:00:00Z")

    # the HTTP ingest path writes to the same topic; a retried transaction_id is counted once
    for _ in range(2):
        stack.client.post("/api/v1/events", {"event": {
            "transaction_id": "http-1", "external_subscription_id": "s1", "code": "calls"}})
    stack.wait_consumed(26)
    assert charge(usage(stack), "calls")["amount_cents"] == 1500  # 16th unit: +0.50

    # restart on the same data directory: catalog and usage survive, nothing is re-counted
    assert stack.stop() == 0
    restarted = stack_factory(data_dir=stack.data_dir, name=stack.name).start()
    assert usage(restarted)["amount_cents"] == 1615
    produce(kafka_bootstrap, restarted.topic, [event("c-99", "calls"), event("c-0", "calls")])
    status = restarted.wait_consumed(28)
    assert status["reconciled"] is True
    assert charge(usage(restarted), "calls")["units"] == "17"
    assert usage(restarted)["amount_cents"] == 1665


def test_api_errors_use_lagos_envelope(stack_factory):
    stack = stack_factory().start()
    client = stack.client

    def status_of(method: str, path: str, body: object = None, key: str | None = None) -> tuple:
        import urllib.request

        data = body if isinstance(body, bytes) else (None if body is None else orjson.dumps(body))
        req = urllib.request.Request(client.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {key or client.api_key}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    code, body = status_of("POST", "/api/v1/events", {"event": {}}, key="wrong")
    assert code == 401 and body["status"] == 401
    code, body = status_of("POST", "/api/v1/events", b"{nope")
    assert code == 400 and body["code"] == "bad_request"
    code, body = status_of("POST", "/api/v1/events", {"something": 1})
    assert code == 400
    code, body = status_of("POST", "/api/v1/events", {"event": {"code": "x"}})
    assert code == 422 and body["code"] == "validation_errors"
    assert {"transaction_id", "external_subscription_id"} <= set(body["error_details"])
    too_many = [{"transaction_id": f"t{i}", "external_subscription_id": "s", "code": "c"}
                for i in range(101)]
    code, body = status_of("POST", "/api/v1/events/batch", {"events": too_many})
    assert code == 422 and body["error_details"] == {"events": ["too_many_events"]}
    mixed = [{"transaction_id": "ok", "external_subscription_id": "s", "code": "c"},
             {"transaction_id": 5, "external_subscription_id": "s", "code": "c"}]
    code, body = status_of("POST", "/api/v1/events/batch", {"events": mixed})
    assert code == 422 and list(body["error_details"]) == ["1"]
    code, body = status_of("POST", "/api/v1/events", b"x" * (1_048_576 + 10))
    assert code == 413 and body["status"] == 413
    code, body = status_of("GET", "/api/v1/customers/nobody/current_usage"
                                  "?external_subscription_id=none")
    assert code == 404 and body["code"] == "subscription_not_found"
    with pytest.raises(ApiError) as err:
        client.post("/api/v1/plans", {"plan": {"code": "p", "interval": "daily",
                                               "amount_currency": "EUR"}})
    assert err.value.status == 422 and "interval" in err.value.body["error_details"]
    # nothing above reached the raw topic
    assert sum(p["consumed"] for p in stack.status()["partitions"]) == 0
