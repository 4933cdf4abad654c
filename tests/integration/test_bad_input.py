"""Every endpoint answers bad input with a 4xx in Lago's envelope, never a 5xx."""

from __future__ import annotations

import urllib.error
import urllib.request

import orjson
import pytest

pytestmark = pytest.mark.integration

WRITE_ROUTES = [
    ("POST", "/api/v1/events"),
    ("POST", "/api/v1/events/batch"),
    ("POST", "/api/v1/billable_metrics"),
    ("PUT", "/api/v1/billable_metrics/nope"),
    ("POST", "/api/v1/plans"),
    ("PUT", "/api/v1/plans/nope"),
    ("POST", "/api/v1/customers"),
    ("POST", "/api/v1/subscriptions"),
    ("POST", "/api/v1/meterline/catalog"),
    ("POST", "/api/v1/meterline/dead_letters/redrive"),
]
READ_ROUTES = [
    ("GET", "/api/v1/billable_metrics/nope"),
    ("DELETE", "/api/v1/billable_metrics/nope"),
    ("GET", "/api/v1/plans/nope"),
    ("DELETE", "/api/v1/plans/nope"),
    ("GET", "/api/v1/customers/nope"),
    ("GET", "/api/v1/subscriptions/nope"),
    ("DELETE", "/api/v1/subscriptions/nope"),
    ("GET", "/api/v1/events/nope"),
    ("GET", "/api/v1/customers/nope/current_usage"),
    ("GET", "/api/v1/customers/nope/current_usage?external_subscription_id=x&period_index=z"),
    ("GET", "/api/v1/meterline/dead_letters?since=yesterday&limit=-4"),
    ("GET", "/api/v1/billable_metrics?page=-1&per_page=abc"),
]
BAD_BODIES = [
    b"{not json",
    b"[]",
    b"null",
    b'"text"',
    b'{"event": 5, "events": "x", "billable_metric": [], "plan": 1, "customer": true, '
    b'"subscription": "s", "catalog": [], "limit": "many"}',
    orjson.dumps({"events": [{}] * 101}),
    orjson.dumps({"billable_metric": {"code": 5, "aggregation_type": "avg"}}),
    orjson.dumps({"plan": {"code": "p", "interval": "monthly", "amount_currency": "EUR",
                           "charges": [{"billable_metric_id": "missing",
                                        "charge_model": "graduated",
                                        "properties": {"graduated_ranges": [{"from": "x"}]}}]}}),
    orjson.dumps({"subscription": {"external_id": "s", "external_customer_id": "c",
                                   "plan_code": "nope", "billing_time": "sometimes"}}),
]


def call(stack, method: str, path: str, body: bytes | None) -> tuple[int, dict]:
    req = urllib.request.Request(stack.client.url + path, data=body, method=method,
                                 headers={"Authorization": f"Bearer {stack.client.api_key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_no_endpoint_answers_bad_input_with_a_server_error(stack_factory):
    stack = stack_factory().start()
    seen: list[tuple[str, str, int]] = []
    for method, path in WRITE_ROUTES:
        for body in BAD_BODIES:
            status, answer = call(stack, method, path, body)
            seen.append((method, path, status))
            assert 400 <= status < 500, (method, path, body, status, answer)
            assert answer["status"] == status and "error" in answer, (method, path, answer)
    for method, path in READ_ROUTES:
        status, answer = call(stack, method, path, None)
        seen.append((method, path, status))
        assert 400 <= status < 500 or status == 200, (method, path, status, answer)
        assert status != 200 or "page" in path, (method, path, answer)
    # the stack is still healthy and nothing reached the raw topic
    assert stack.client.healthy()
    assert sum(p["consumed"] for p in stack.status()["partitions"]) == 0
    assert len(seen) == len(WRITE_ROUTES) * len(BAD_BODIES) + len(READ_ROUTES)
