"""The shipped deploy/ files: promtool accepts them, the compose file holds together, and every
PromQL expression (alert rules, Grafana dashboards) names series and labels Meterline exports.

No Docker engine runs here, so the compose file is checked by parsing it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from meterline.settings import Settings
from streams.metrics import Metrics
from tests.conftest import REPO, required_binary

DEPLOY = REPO / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
COMPOSE = DEPLOY / "compose.yaml"

# Series Prometheus itself adds to every scrape, and labels it attaches to every series.
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"instance", "job"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan", "le",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "resets",
    "changes", "histogram_quantile", "time", "abs", "absent", "absent_over_time", "clamp_min",
    "clamp_max", "ceil", "floor", "round", "vector", "scalar", "label_values", "label_replace",
    "max_over_time", "min_over_time", "avg_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "timestamp", "sort", "sort_desc",
}


# --- what Meterline exports ----------------------------------------------------------------------
def exported_series() -> dict[str, set[str]]:
    """Every series name a fresh ``Metrics`` registry exports, with its label names."""
    metrics = Metrics()
    names = metrics.names()
    labels: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        base = value._name  # label names: no public API
        own = set(value._labelnames)
        for name in names:
            if name == base or (name.startswith(base + "_") and name[len(base) + 1:] in {
                "total", "created", "bucket", "sum", "count"
            }):
                labels[name] = own | ({"le"} if name.endswith("_bucket") else set())
    assert set(labels) == names, "every exported name maps to one metric object"
    return labels


def test_exported_series_cover_the_issue_list():
    names = set(exported_series())
    for required in (
        "meterline_messages_total", "meterline_dead_letters_total", "meterline_consumer_lag",
        "meterline_batch_size_bucket", "meterline_step_seconds_bucket",
        "meterline_insert_rows_total", "meterline_insert_seconds_bucket",
        "meterline_freshness_seconds_bucket", "meterline_event_time_watermark_seconds",
        "meterline_reconciliation_mismatch", "meterline_catalog_version",
        "meterline_catalog_age_seconds", "meterline_rebalances_total",
        "meterline_http_requests_total", "meterline_http_request_seconds_bucket",
        "meterline_usage_read_seconds_bucket", "meterline_store_errors_total",
        "meterline_store_retries_total", "meterline_pipeline_stalled",
        "meterline_seconds_since_commit", "meterline_ready",
        "meterline_quarantined_messages_total", "meterline_rolled_back_batches_total",
    ):
        assert required in names, required
    assert all(name.startswith("meterline_") for name in names)


def test_label_sets_are_bounded():
    """No label that grows with customers, subscriptions or transactions."""
    allowed = {"topic", "partition", "outcome", "reason", "table", "step", "operation", "event",
               "route", "method", "status", "le"}
    for name, labels in exported_series().items():
        assert labels <= allowed, (name, labels - allowed)


# --- PromQL in the shipped files -----------------------------------------------------------------
def alert_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    return [
        (f"alert {rule['alert']}", rule["expr"])
        for group in rules["groups"] for rule in group["rules"]
    ]


def _panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))
    return out


def dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            if query:
                found.append((f"{path.name}: variable {variable['name']}", query))
    return found


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def _series_in(expr: str) -> list[str]:
    code = re.sub(r"\$\{?\w+\}?", " ", _strip_strings(expr))  # Grafana variables
    code = re.sub(r"\{[^}]*\}", " ", code)  # matchers
    code = re.sub(r"\[[^\]]*\]", " ", code)  # ranges
    code = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", code)
    tokens = re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", code)
    return [t for t in tokens if t.lower() not in PROMQL_WORDS]


def test_the_shipped_files_have_expressions():
    assert len(alert_expressions()) >= 6
    assert len(DASHBOARDS) >= 2
    assert len(dashboard_expressions()) >= 20


@pytest.mark.parametrize(
    ("where", "expr"), alert_expressions() + dashboard_expressions(),
    ids=lambda value: value if len(value) < 60 else None,
)
def test_every_expression_names_exported_series_and_labels(where, expr):
    exported = exported_series()
    variable = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", expr, re.S)
    if variable:  # Grafana's label_values(selector, label)
        expr, label = variable.groups()
        labels = set().union(*(exported.get(s, set()) for s in _series_in(expr)))
        assert label in labels | TARGET_LABELS, f"{where}: no label {label!r}"
    series = _series_in(expr)
    assert series, f"{where}: no metric in {expr!r}"
    unknown = [s for s in series if s not in exported and s not in PROMETHEUS_SERIES]
    assert not unknown, f"{where}: {unknown} are not exported by Meterline"
    usable = set().union(*(exported.get(s, set()) for s in series)) | TARGET_LABELS
    code = _strip_strings(expr)
    for name, matchers in re.findall(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", code):
        for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
            assert label in exported.get(name, set()) | TARGET_LABELS, (where, name, label)
    for grouping in re.findall(
        r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", code
    ):
        for label in re.findall(r"\w+", grouping):
            assert label in usable, f"{where}: label {label!r} is not on {series}"


def test_scanner_catches_a_misspelt_metric():
    assert _series_in('sum by (le) (rate(meterline_freshnes_seconds_bucket{a="x"}[5m]))') == [
        "meterline_freshnes_seconds_bucket"
    ]
    assert _series_in('up{job="meterline"} == 0') == ["up"]


# --- promtool ------------------------------------------------------------------------------------
def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [required_binary("promtool"), *args], capture_output=True, text=True, timeout=60
    )


def test_promtool_check_config():
    done = _promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout + done.stderr


def test_promtool_check_rules():
    done = _promtool("check", "rules", str(ALERT_RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_cover_the_issue_list():
    rules = {rule["alert"]: rule for rule in yaml.safe_load(ALERT_RULES.read_text())[
        "groups"][0]["rules"]}
    text = " ".join(rule["expr"] for rule in rules.values())
    assert "deriv(meterline_consumer_lag" in text  # lag growing
    assert "histogram_quantile(0.99" in text and "meterline_freshness_seconds_bucket" in text
    assert 'outcome="dead_letter"' in text
    assert "meterline_store_errors_total" in text
    assert "meterline_reconciliation_mismatch" in text
    assert 'up{job="meterline"} == 0' in text
    assert "meterline_pipeline_stalled" in text  # issue 16: a stall is an alert, not a silence
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


# --- the compose stack ---------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _meterline_services(doc: dict) -> dict[str, dict]:
    return {name: svc for name, svc in doc["services"].items() if "build" in svc}


def test_compose_services_and_pinned_images():
    doc = compose()
    services = doc["services"]
    images = {name: svc.get("image", "") for name, svc in services.items()}
    for name in ("kafka", "clickhouse", "prometheus", "grafana"):
        assert name in services
    assert images["kafka"].startswith("apache/kafka:")
    assert images["clickhouse"].startswith("clickhouse/clickhouse-server:")
    assert images["prometheus"].startswith("prom/prometheus:")
    assert images["grafana"].startswith("grafana/grafana:")
    for name, image in images.items():
        repo, _, tag = image.rpartition(":")
        assert repo and tag, f"{name}: image {image!r} has no tag"
        assert tag not in {"latest", "lts", "main", "head"}, f"{name}: {image!r} is not pinned"
        assert re.fullmatch(r"v?\d+(\.\d+)+", tag), f"{name}: {image!r} is not a version"
    assert not any("zookeeper" in name or "zookeeper" in image for name, image in images.items())
    roles = services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert "controller" in roles and "broker" in roles  # KRaft


def test_compose_meterline_services_build_the_image_and_configure_it():
    doc = compose()
    meterline = _meterline_services(doc)
    assert len(meterline) >= 2  # workers (every one also serves the API)
    fields = set(Settings.model_fields)
    for name, svc in meterline.items():
        build = svc["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == REPO
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), name
        env = svc["environment"]
        assert env["METERLINE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert "@clickhouse:8123" in env["METERLINE_CLICKHOUSE_URL"]
        assert env["METERLINE_HTTP_HOST"] == "0.0.0.0"
        for key in env:
            assert key.startswith("METERLINE_") and key[10:].lower() in fields, key


def test_dockerfile_installs_the_package():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert "pip install ." in text
    for source in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (REPO / source).exists(), source
    pyproject = (REPO / "pyproject.toml").read_text()
    listed = re.search(r"packages = \[(.*?)\]", pyproject, re.S).group(1)
    for package in re.findall(r'"(\w+)"', listed):
        assert f"COPY {package} " in text, f"the image misses package {package}"


def test_compose_mounts_point_at_shipped_files():
    doc = compose()
    mounted: dict[str, Path] = {}
    for name, svc in doc["services"].items():
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                path = (DEPLOY / source).resolve()
                assert path.exists(), f"{name}: {source} does not exist"
                mounted[target] = path
    assert mounted["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG
    assert mounted["/etc/prometheus/alerts.yml"] == ALERT_RULES
    # Grafana: the provider's path is the dashboards mount; the datasource uid is the dashboards'
    provider = yaml.safe_load(
        (mounted["/etc/grafana/provisioning/dashboards"] / "meterline.yml").read_text()
    )["providers"][0]
    assert mounted[provider["options"]["path"]] == DEPLOY / "grafana" / "dashboards"
    datasource = yaml.safe_load(
        (mounted["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids = {p["datasource"]["uid"] for p in _panels(board["panels"]) if "datasource" in p}
        assert uids == {datasource["uid"]}, path.name
    home = doc["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (mounted[provider["options"]["path"]] / Path(home).name).is_file()


def test_prometheus_scrapes_every_meterline_service():
    doc = compose()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "meterline"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = {
        f"{name}:{svc['environment']['METERLINE_HTTP_PORT']}"
        for name, svc in _meterline_services(doc).items()
    }
    assert targets == expected
    assert job.get("metrics_path", "/metrics") == "/metrics"
