"""Dead letters are listed with their reason and re-driven once the catalog is fixed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.test_end_to_end import CATALOG, charge, event, produce

pytestmark = pytest.mark.integration


def cli(stack, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "meterline.cli", *args, "--url", stack.client.url,
         "--api-key", stack.client.api_key],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_no_subscription_letters_are_redriven_after_the_subscription_exists(
    stack_factory, kafka_bootstrap
):
    stack = stack_factory().start()
    stack.client.post("/api/v1/meterline/catalog", {"catalog": CATALOG})
    early = [event(f"s2-{i}", "calls", sub="s2") for i in range(3)]
    produce(kafka_bootstrap, stack.topic, [*early, b"\xff not json"], sub="s2")
    stack.wait_consumed(4)

    letters = json.loads(cli(stack, "dead-letters", "list", "--json"))
    assert sorted(d["error_code"] for d in letters) == ["invalid_json"] + ["no_subscription"] * 3
    invalid = next(d for d in letters if d["error_code"] == "invalid_json")
    assert invalid["payload_base64"] == "/yBub3QganNvbg=="  # the original bytes, not UTF-8
    filtered = json.loads(cli(stack, "dead-letters", "list", "--reason", "invalid_json",
                              "--json"))
    assert len(filtered) == 1

    stack.client.post("/api/v1/meterline/catalog", {"catalog": {"subscriptions": [
        {"external_id": "s2", "external_customer_id": "c1", "plan_code": "pro",
         "started_at": "2026-01-01T00:00:00Z"}]}})
    assert json.loads(cli(stack, "dead-letters", "redrive", "--reason", "no_subscription")) == {
        "redriven": 3, "by_reason": {"no_subscription": 3}}
    status = stack.wait_consumed(7)
    assert status["reconciled"] is True
    usage = stack.client.get(
        "/api/v1/customers/c1/current_usage?external_subscription_id=s2")["customer_usage"]
    assert charge(usage, "calls")["events_count"] == 3
    assert charge(usage, "calls")["amount_cents"] == 300  # 3 units × 1.00 in the first tier

    # each letter is re-driven once; the list shows what is still pending
    assert json.loads(cli(stack, "dead-letters", "redrive", "--reason", "no_subscription")) == {
        "redriven": 0, "by_reason": {}}
    assert json.loads(cli(stack, "dead-letters", "redrive"))["redriven"] == 1  # invalid JSON
    stack.wait_consumed(8)
    pending = json.loads(cli(stack, "dead-letters", "list", "--json"))
    # the re-driven bytes failed again: a new letter at a new offset
    assert [d["error_code"] for d in pending] == ["invalid_json"]
    assert pending[0]["source_offset"] != invalid["source_offset"]
    everything = json.loads(cli(stack, "dead-letters", "list", "--all", "--json"))
    assert len(everything) == 5


def test_usage_command_prints_priced_usage_of_a_subscription(stack_factory, kafka_bootstrap):
    stack = stack_factory().start()
    stack.client.post("/api/v1/meterline/catalog", {"catalog": CATALOG})
    produce(kafka_bootstrap, stack.topic, [event(f"u-{i}", "calls") for i in range(12)])
    stack.wait_consumed(12)
    table = cli(stack, "usage", "--subscription", "s1")
    # 10 × 1.00 + (2 + 2 × 0.50) = 13.00 EUR
    assert "calls (graduated)" in table and "13.00 EUR" in table
    doc = json.loads(cli(stack, "usage", "--subscription", "s1", "--json"))
    assert doc["customer_usage"]["amount_cents"] == 1300
    previous = json.loads(cli(stack, "usage", "--subscription", "s1", "--period", "-1",
                              "--json"))
    assert previous["customer_usage"]["amount_cents"] == 0
