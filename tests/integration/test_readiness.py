"""`meterline up` as a new user meets it: ready when it says so, its key kept secret, and
nothing left running after it is killed (issue 16, findings 4, 9 and 12)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from lago_python_client.client import Client
from lago_python_client.models import BillableMetric, Charge, Charges, Customer, Event, Plan
from lago_python_client.models import Subscription as LagoSubscription

from streams.broker import free_port

pytestmark = pytest.mark.integration


class Up:
    """A `meterline up` process whose output is read line by line."""

    def __init__(self, data_dir: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        name = uuid.uuid4().hex[:8]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
        self.env.update({
            "METERLINE_DATA_DIR": str(data_dir), "METERLINE_HTTP_PORT": str(self.port),
            "METERLINE_RAW_TOPIC": f"raw-{name}", "METERLINE_DEAD_LETTER_TOPIC": f"dead-{name}",
            "METERLINE_CATALOG_TOPIC": f"catalog-{name}",
            "METERLINE_CONSUMER_GROUP": f"group-{name}",
            "METERLINE_KAFKA_SESSION_TIMEOUT_MS": "2000", **env,
        })
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "up"], env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, prefix: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.01)
        pytest.fail(f"no line {prefix!r}: {self.process.poll()=}\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def watch_before_ready(url: str, stop: threading.Event, seen: list[tuple[str, int, str | None]]):
    """Call the API as fast as possible until ``/ready`` says ready; record what answered."""
    with httpx.Client(timeout=5) as client:
        while not stop.is_set() and ("/ready", 200, None) not in seen:
            for path in ("/api/v1/events", "/ready"):
                try:
                    if path == "/ready":
                        r = client.get(url + path)
                    else:
                        r = client.post(url + path, json={"event": {}},
                                        headers={"Authorization": "Bearer nope"})
                except httpx.TransportError:
                    continue  # the port is not open yet
                seen.append((path, r.status_code, r.headers.get("Retry-After")))
            time.sleep(0.005)


def test_the_lago_client_works_the_moment_the_key_is_printed(kafka_bootstrap, tmp_path):
    data_dir = tmp_path / "data"
    up = Up(data_dir, {"METERLINE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    stop_watching = threading.Event()
    before: list[tuple[str, int, str | None]] = []
    watcher = threading.Thread(target=watch_before_ready, args=(up.url, stop_watching, before))
    watcher.start()
    try:
        key_line = up.wait_line("API key")
        stop_watching.set()
        key = key_line.split()[2]
        # The moment the key is printed, the official client works: catalog, then an event.
        lago = Client(api_key=key, api_url=up.url)
        lago.billable_metrics.create(BillableMetric(
            name="Calls", code="calls", aggregation_type="count_agg"))
        lago.plans.create(Plan(
            name="P", code="p", interval="monthly", amount_cents=0, amount_currency="EUR",
            charges=Charges(__root__=[Charge(
                billable_metric_id=lago.billable_metrics.find("calls").lago_id,
                charge_model="standard", properties={"amount": "2"})]),
        ))
        lago.customers.create(Customer(external_id="c1", name="C1", currency="EUR"))
        lago.subscriptions.create(LagoSubscription(
            external_customer_id="c1", plan_code="p", external_id="s1"))
        lago.events.create(Event(transaction_id="t1", external_subscription_id="s1",
                                 code="calls", properties={}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            usage = lago.customers.current_usage("c1", "s1")
            if usage.charges_usage and usage.charges_usage[0].events_count == 1:
                break
            time.sleep(0.2)
        assert usage.amount_cents == 200
    finally:
        stop_watching.set()
        watcher.join(10)
        up.stop()
    # Before that, every API request was told to come back, never answered half-started.
    assert before[-1] == ("/ready", 200, None)  # the key came once /ready said so
    api_answers = [(status, retry) for path, status, retry in before if path != "/ready"]
    # (the last call may have come in the instant between ready and its /ready check)
    assert api_answers and all(answer == (503, "1") for answer in api_answers[:-1])
    assert api_answers[-1] in ((503, "1"), (401, None))
    assert all(status == 503 for path, status, _ in before[:-1] if path == "/ready")

    # The key was shown once; the store and the data directory keep it from other users.
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "api_key").stat().st_mode) == 0o600
    assert (data_dir / "api_key").read_text().strip() == key
    again = Up(data_dir, {"METERLINE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    try:
        line = again.wait_line("API key")
        assert key not in "\n".join(again.lines) and "first start" in line
        with httpx.Client(timeout=10) as client:
            path = again.url + "/api/v1/billable_metrics"
            assert client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
            padded = client.get(path, headers={"Authorization": f"Bearer   {key}"})
            assert padded.status_code == 401
    finally:
        again.stop()
    stored = [p for p in (data_dir / "chdb").rglob("*")
              if p.is_file() and key.encode() in p.read_bytes()]
    assert stored == []


def test_a_killed_stack_leaves_no_broker_behind(tmp_path):
    """Finding 12: Tansu outlived a SIGKILL of `meterline up`'s process group, every time."""
    data_dir = tmp_path / "data"
    up = Up(data_dir, {})  # the embedded broker
    pid_file = data_dir / "broker.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    broker_pid = int(pid_file.read_text())
    assert Path(f"/proc/{broker_pid}").exists()
    os.killpg(up.process.pid, signal.SIGKILL)
    up.process.wait(10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{broker_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = Path(f"/proc/{broker_pid}").exists() and b"Z" not in Path(
        f"/proc/{broker_pid}/stat").read_bytes().split(b")")[-1][:3]
    assert not alive, f"the broker {broker_pid} survived the stack"
