"""A frozen broker makes `POST /api/v1/events` answer 503 + Retry-After within
METERLINE_PUBLISH_TIMEOUT_SECONDS, instead of hanging (issue 16, finding 8); the client's retry
after the broker is back is counted once."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request

import orjson
import pytest

from streams.broker import EmbeddedBroker
from tests.conftest import Stack

pytestmark = pytest.mark.integration

CATALOG = {
    "billable_metrics": [{"code": "calls", "aggregation_type": "count_agg"}],
    "plans": [{"code": "p", "interval": "monthly", "amount_currency": "EUR",
               "charges": [{"billable_metric_code": "calls", "charge_model": "standard",
                            "properties": {"amount": "1"}}]}],
    "subscriptions": [{"external_id": "s1", "external_customer_id": "c1", "plan_code": "p",
                       "started_at": "2026-01-01T00:00:00Z"}],
}
EVENT = orjson.dumps({"event": {"transaction_id": "t-frozen", "external_subscription_id": "s1",
                                "code": "calls"}})


def post_event(stack: Stack) -> tuple[int, dict, str | None, float]:
    request = urllib.request.Request(stack.client.url + "/api/v1/events", data=EVENT,
                                     method="POST",
                                     headers={"Authorization": f"Bearer {stack.client.api_key}"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = (response.status, orjson.loads(response.read()), None)
    except urllib.error.HTTPError as exc:
        answer = (exc.code, orjson.loads(exc.read()), exc.headers.get("Retry-After"))
    return (*answer, time.monotonic() - started)


def test_a_frozen_broker_gets_a_503_in_bounded_time_and_the_retry_counts_once(tmp_path):
    broker = EmbeddedBroker.start()  # our own: this test freezes it
    stack = Stack(broker.bootstrap_servers, tmp_path / "data", "frozen",
                  {"METERLINE_PUBLISH_TIMEOUT_SECONDS": "2"})
    try:
        stack.start()
        stack.client.post("/api/v1/meterline/catalog", {"catalog": CATALOG})
        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            status, body, retry_after, took = post_event(stack)
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        # before: the request hung as long as the broker was frozen
        assert (status, body["code"]) == (503, "temporarily_unavailable"), body
        assert retry_after is not None and int(retry_after) >= 1
        assert took < 10
        deadline = time.monotonic() + 60
        while True:  # the client retries until a 200
            status, body, _, _ = post_event(stack)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 200, body
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            usage = stack.client.get(
                "/api/v1/customers/c1/current_usage?external_subscription_id=s1")
            [charge] = usage["customer_usage"]["charges_usage"]
            if charge["events_count"]:
                break
            time.sleep(0.3)
        time.sleep(1)  # the first copy, if the broker took it after all, is a duplicate
        usage = stack.client.get("/api/v1/customers/c1/current_usage?external_subscription_id=s1")
        assert usage["customer_usage"]["charges_usage"][0]["events_count"] == 1
    finally:
        stack.stop()
        os.kill(broker.process.pid, signal.SIGCONT)
        broker.stop()
