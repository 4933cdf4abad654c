"""Debian's real Prometheus scrapes a running `meterline up` with the shipped scrape config.

The config is deploy/prometheus/prometheus.yml with its targets rewritten to this test's ports
and the shipped alert rules loaded. Everything is asserted through Prometheus' HTTP API: the key
series exist and move after events are sent, the rules load and evaluate, and every dashboard
query is valid PromQL.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from streams.broker import free_port
from tests.conftest import REPO, required_binary

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy"
ORG = "default"
CATALOG = {
    "billable_metrics": [{"code": "calls", "aggregation_type": "count_agg"}],
    "plans": [{
        "code": "pro", "interval": "monthly", "amount_currency": "EUR",
        "charges": [{"billable_metric_code": "calls", "charge_model": "standard",
                     "properties": {"amount": "0.10"}}],
    }],
    "customers": [{"external_id": "c1", "currency": "EUR"}],
    "subscriptions": [{"external_id": "s1", "external_customer_id": "c1", "plan_code": "pro",
                       "started_at": "2026-01-01T00:00:00Z"}],
}
USAGE_PATH = "/api/v1/customers/c1/current_usage?external_subscription_id=s1"


class Prometheus:
    """A prometheus process on 127.0.0.1 and a tiny client for its HTTP API."""

    def __init__(self, url: str, process: subprocess.Popen, log: Path):
        self.url = url
        self.process = process
        self.log = log

    def api(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query: the result vector."""
        return self.api("/api/v1/query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` (None while it has no series)."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait(self, expr: str, check: Callable[[float], bool], timeout: float = 60) -> float:
        """Wait until ``expr`` has a value passing ``check``; return it."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(expr)
            if value is not None and check(value):
                return value
            time.sleep(0.5)
        pytest.fail(f"{expr} is {value} after {timeout}s\n{self.log.read_text()[-3000:]}")


@contextmanager
def prometheus(config: dict, workdir: Path, port: int) -> Iterator[Prometheus]:
    """Run Debian's prometheus with ``config`` on loopback; stop it at exit."""
    binary = required_binary("prometheus")
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited early:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Prometheus(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def shipped_config_for(meterline_port: int, prometheus_port: int) -> dict:
    """deploy/prometheus/prometheus.yml with this test's targets and a 1 s scrape."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(DEPLOY / "prometheus" / rule) for rule in config["rule_files"]]
    targets = {"meterline": f"127.0.0.1:{meterline_port}",
               "prometheus": f"127.0.0.1:{prometheus_port}"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def send_events(stack, prefix: str, count: int, duplicates: int = 0) -> None:
    """Through the HTTP API: ``count`` events, ``duplicates`` resent, one unknown metric."""
    events = [
        {"transaction_id": f"{prefix}-{i}", "external_subscription_id": "s1", "code": "calls"}
        for i in range(count)
    ]
    events += events[:duplicates]
    events.append({"transaction_id": f"{prefix}-bad", "external_subscription_id": "s1",
                   "code": "no_such_metric"})
    stack.client.post("/api/v1/events/batch", {"events": events})


def dashboard_queries() -> list[str]:
    queries = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        stack = list(json.loads(path.read_text())["panels"])
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            queries.extend(target["expr"] for target in panel.get("targets", []))
    return queries


def test_prometheus_scrapes_meterline_with_the_shipped_config(stack_factory, tmp_path):
    required_binary("prometheus")
    stack = stack_factory(name=f"prom{uuid.uuid4().hex[:8]}").start()
    stack.client.post("/api/v1/meterline/catalog", {"catalog": CATALOG})
    port = free_port()
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    consumed = 'sum(meterline_messages_total{job="meterline",outcome="consumed"})'
    freshness = 'sum(meterline_freshness_seconds_count{job="meterline"})'
    batch_posts = ('sum(meterline_http_requests_total{job="meterline",'
                   'route="/api/v1/events/batch",method="POST",status="200"})')
    usage_reads = 'sum(meterline_usage_read_seconds_count{job="meterline"})'

    with prometheus(shipped_config_for(stack.port, port), workdir, port) as prom:
        prom.wait('up{job="meterline"}', lambda v: v == 1)

        # first round: 30 events + 3 duplicates + 1 dead letter
        send_events(stack, "a", 30, duplicates=3)
        stack.wait_consumed(34)
        stack.client.get(USAGE_PATH)
        first = {
            consumed: prom.wait(consumed, lambda v: v >= 34),
            freshness: prom.wait(freshness, lambda v: v >= 1),
            batch_posts: prom.wait(batch_posts, lambda v: v >= 1),
            usage_reads: prom.wait(usage_reads, lambda v: v >= 1),
        }
        for series in (
            'meterline_consumer_lag{job="meterline"}',
            'meterline_freshness_seconds_bucket{job="meterline",le="+Inf"}',
            'meterline_event_time_watermark_seconds{job="meterline"}',
            'meterline_messages_total{job="meterline",outcome="duplicate"}',
            'meterline_dead_letters_total{job="meterline",reason="unknown_metric"}',
            'meterline_step_seconds_count{job="meterline",step="parse"}',
            'meterline_step_seconds_count{job="meterline",step="rollup"}',
            'meterline_step_seconds_count{job="meterline",step="insert"}',
            'meterline_insert_rows_total{job="meterline",table="usage_rollups"}',
            'meterline_insert_seconds_bucket{job="meterline",table="events"}',
            'meterline_rebalances_total{job="meterline",event="assigned"}',
            'meterline_catalog_version{job="meterline"}',
            'meterline_catalog_age_seconds{job="meterline"}',
            'meterline_http_request_seconds_bucket{job="meterline"}',
        ):
            assert prom.query(series), f"{series} is missing"
        # routes are patterns, never concrete paths
        routes = {r["metric"]["route"] for r in prom.query("meterline_http_requests_total")}
        assert "/api/v1/customers/{external_customer_id}/current_usage" in routes
        assert not any("c1" in route for route in routes)
        watermark = prom.value('max(meterline_event_time_watermark_seconds{job="meterline"})')
        assert abs(watermark - time.time()) < 300  # the API stamps events at ingestion

        # second round: everything moves
        send_events(stack, "b", 40, duplicates=2)
        stack.wait_consumed(34 + 43)
        stack.client.get(USAGE_PATH)
        prom.wait(consumed, lambda v: v >= first[consumed] + 43)
        for expr in (freshness, batch_posts, usage_reads):
            prom.wait(expr, lambda v, before=first[expr]: v > before)
        assert prom.value(
            'sum(meterline_messages_total{job="meterline",outcome="duplicate"})'
        ) == 5
        # lag is measured from the broker on a timer (METERLINE_PROGRESS_INTERVAL_SECONDS):
        # a measurement taken during the second round may still be the last one scraped
        assert prom.wait('sum(meterline_consumer_lag{job="meterline"})', lambda v: v == 0) == 0
        assert prom.value(
            'histogram_quantile(0.99, sum by (le) (rate(meterline_freshness_seconds_bucket[1m])))'
        ) < 30

        # the shipped alert rules load and evaluate without errors; none fires here
        deadline = time.monotonic() + 30
        while True:
            groups = prom.api("/api/v1/rules")["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
                break
            assert time.monotonic() < deadline, groups
            time.sleep(0.5)
        assert len(rules) >= 6
        assert all(rule["health"] == "ok" for rule in rules), rules
        firing = [r["name"] for r in rules if r["state"] == "firing"]
        assert firing == [], firing

        # every dashboard query is valid PromQL for this Prometheus
        for expr in dashboard_queries():
            concrete = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
            prom.query(concrete)  # raises on a parse error (status "error", HTTP 400)
