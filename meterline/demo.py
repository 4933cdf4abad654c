"""``meterline demo``: start the embedded stack, load a catalog, send events, print priced usage."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import yaml

from meterline.client import MeterlineClient
from meterline.report import money, usage_table
from streams.broker import free_port

SUBSCRIPTIONS = {"sub_acme": "acme", "sub_globex": "globex"}


def sample_catalog() -> dict:
    """The sample catalog shipped with the package."""
    text = resources.files("meterline").joinpath("samples/catalog.yaml").read_text()
    return yaml.safe_load(text)


def sample_events(count: int, seed: int = 7) -> list[dict]:
    """``count`` events spread over the sample subscriptions and metrics (deterministic)."""
    rng = random.Random(seed)
    events: list[dict] = []
    for i in range(count):
        sub = rng.choice(list(SUBSCRIPTIONS))
        if rng.random() < 0.6:
            events.append({"transaction_id": f"demo-{i}", "external_subscription_id": sub,
                           "code": "api_calls"})
        else:
            events.append({
                "transaction_id": f"demo-{i}",
                "external_subscription_id": sub,
                "code": "storage_gb",
                "properties": {"gb": round(rng.uniform(0.1, 5.0), 2),
                               "region": rng.choice(["eu", "us", "apac"])},
            })
    return events


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _send_events(client: MeterlineClient, event_count: int) -> int:
    """Send the sample events, 50 retried duplicates and 2 invalid events; return how many."""
    events = sample_events(event_count)
    duplicates = events[:50]  # producers retry: the same transaction_ids again
    bad = [{"transaction_id": "bad-1", "external_subscription_id": "sub_acme",
            "code": "no_such_metric"},
           {"transaction_id": "bad-2", "external_subscription_id": "sub_acme",
            "code": "storage_gb", "properties": {"gb": "lots", "region": "eu"}}]
    to_send = events + duplicates + bad
    started = time.monotonic()
    for i in range(0, len(to_send), 100):
        client.post("/api/v1/events/batch", {"events": to_send[i:i + 100]})
    print(f"Sent {len(to_send)} events ({len(duplicates)} duplicates, {len(bad)} invalid) "
          f"in {time.monotonic() - started:.1f}s", flush=True)
    return len(to_send)


def _report(client: MeterlineClient, sent: int) -> int:
    """Wait until the pipeline consumed every event sent, print its counts and the priced
    usage; 0 when the counts reconcile."""

    def processed() -> bool:
        status = client.get("/api/v1/meterline/status")
        return sum(p["consumed"] for p in status["partitions"]) >= sent

    _wait(processed, 120, "the pipeline to process every event")
    status = client.get("/api/v1/meterline/status")
    totals = {k: sum(p[k] for p in status["partitions"])
              for k in ("consumed", "stored", "duplicates", "dead_letters")}
    print(f"Pipeline: {totals} reconciled={status['reconciled']}", flush=True)

    usages = [
        client.get(f"/api/v1/customers/{customer}/current_usage"
                   f"?external_subscription_id={sub}")["customer_usage"]
        for sub, customer in SUBSCRIPTIONS.items()
    ]
    print()
    print(usage_table(usages))
    grand = sum(u["amount_cents"] for u in usages)
    print(f"\nTotal billed this period: {money(grand, usages[0]['currency'])}")
    return 0 if status["reconciled"] else 1


def run_demo(*, data_dir: Path | None, event_count: int) -> int:
    """Run the demo end to end; returns the process exit code."""
    workdir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="meterline-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "stack.log"
    env = {**os.environ, "METERLINE_DATA_DIR": str(workdir), "METERLINE_HTTP_PORT": str(port),
           "METERLINE_API_KEY": os.environ.get("METERLINE_API_KEY", "demo-key"),
           "METERLINE_LOG_LEVEL": "warning"}
    print(f"Starting the embedded stack (data in {workdir}, log in {log_path}) ...", flush=True)
    with open(log_path, "wb") as log_file:
        stack = subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "up"],
            env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        client = MeterlineClient(f"http://127.0.0.1:{port}", env["METERLINE_API_KEY"])
        _wait(lambda: stack.poll() is not None or client.ready(), 120, "the stack to be ready")
        if stack.poll() is not None:
            print(log_path.read_text()[-3000:], file=sys.stderr)
            return 1
        applied = client.post("/api/v1/meterline/catalog", {"catalog": sample_catalog()})
        print(f"Catalog applied: {applied['applied']}", flush=True)
        sent = _send_events(client, event_count)
        return _report(client, sent)
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(30)
        except subprocess.TimeoutExpired:
            stack.kill()
            stack.wait()
