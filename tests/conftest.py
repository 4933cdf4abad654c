"""Shared fixtures: one real broker per session, and `meterline up` processes per test.

A missing broker or store is a test failure, never a skip (in CI and locally alike).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterline.client import ApiError, MeterlineClient
from streams.broker import BrokerError, EmbeddedBroker, free_port

TEST_API_KEY = "test-key"
REPO = Path(__file__).resolve().parent.parent


def required_binary(name: str) -> str:
    """Path of a tool the suite needs (``make tools`` installs it).

    Missing in CI (``CI=true``) is a failure; on a developer machine the test is skipped.
    """
    path = shutil.which(name)
    if path:
        return path
    message = f"{name!r} is not installed (run `make tools`: Debian's prometheus package)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a real Kafka-protocol broker: METERLINE_TEST_KAFKA, else embedded Tansu."""
    external = os.environ.get("METERLINE_TEST_KAFKA")
    if external:
        yield external
        return
    try:
        broker = EmbeddedBroker.start()
    except BrokerError as exc:
        pytest.fail(f"the Kafka broker is required and could not start: {exc}")
    yield broker.bootstrap_servers
    broker.stop()


class Stack:
    """A `meterline up` subprocess on its own topics, group, port and data directory."""

    def __init__(self, bootstrap: str, data_dir: Path, name: str, extra_env: dict | None = None):
        self.data_dir = data_dir
        self.name = name
        self.port = free_port()
        self.topic = f"raw-{name}"
        self.env = {
            **os.environ,
            "METERLINE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "METERLINE_DATA_DIR": str(data_dir),
            "METERLINE_HTTP_PORT": str(self.port),
            "METERLINE_RAW_TOPIC": self.topic,
            "METERLINE_DEAD_LETTER_TOPIC": f"dead-{name}",
            "METERLINE_CATALOG_TOPIC": f"catalog-{name}",
            "METERLINE_CONSUMER_GROUP": f"group-{name}",
            "METERLINE_API_KEY": TEST_API_KEY,
            "METERLINE_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "METERLINE_BATCH_MAX_SECONDS": "0.2",
            "METERLINE_LOG_LEVEL": "info",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.client = MeterlineClient(f"http://127.0.0.1:{self.port}", TEST_API_KEY)
        self.log_path = data_dir / f"stack-{uuid.uuid4().hex[:6]}.log"

    def start(self, timeout: float = 90) -> Stack:
        """Start the process and wait until the API answers and the pipeline runs."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "meterline.cli", "up"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"meterline up exited early:\n{self.log_tail()}")
            if self.client.healthy():
                try:
                    if self.client.get("/api/v1/meterline/status").get("log_epoch"):
                        return self
                except ApiError:
                    pass
            time.sleep(0.2)
        pytest.fail(f"meterline up not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the process to end; returns its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"meterline up did not stop on signal {sig}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the process log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def status(self) -> dict:
        """The pipeline status endpoint."""
        return self.client.get("/api/v1/meterline/status")

    def wait_consumed(self, count: int, timeout: float = 60) -> dict:
        """Wait until the committed batches account for ``count`` messages."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            status = self.status()
            if sum(p["consumed"] for p in status["partitions"]) >= count:
                return status
            time.sleep(0.2)
        pytest.fail(f"only {status} consumed after {timeout}s:\n{self.log_tail()}")


@pytest.fixture
def stack_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator:
    """Build :class:`Stack` objects (stopped at teardown)."""
    stacks: list[Stack] = []

    def make(data_dir: Path | None = None, name: str | None = None, **env: str) -> Stack:
        stack = Stack(
            kafka_bootstrap, data_dir or tmp_path / "data", name or uuid.uuid4().hex[:10], env
        )
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()
