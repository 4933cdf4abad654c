"""Crash test: SIGKILL the worker at random moments while it ingests through the real broker;
after each restart the aggregates must end equal to the sum over unique events, exactly.

Defaults: 200k events, 5% duplicates, 20 kills. More with METERLINE_CRASH_EVENTS and
METERLINE_CRASH_KILLS (`make soak` raises them).
"""

from __future__ import annotations

import os
import random
import signal
import time
import urllib.request

import pytest
from confluent_kafka import Producer

from tests.integration.workload import catalog, check_usage, make_workload, usage_over_http

pytestmark = pytest.mark.integration

EVENTS = int(os.environ.get("METERLINE_CRASH_EVENTS", "200000"))
KILLS = int(os.environ.get("METERLINE_CRASH_KILLS", "20"))
SUBSCRIPTIONS = 100


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for i, (key, value) in enumerate(messages):
        producer.produce(topic, key=key, value=value)
        if i % 20_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def test_sigkill_at_random_moments_loses_and_doubles_nothing(stack_factory, kafka_bootstrap):
    rng = random.Random(int(os.environ.get("METERLINE_CRASH_SEED", "11")))
    workload = make_workload(EVENTS, subscriptions=SUBSCRIPTIONS)
    # Batches of 2,000: each cycle's 10,000 messages are five batches, so most of a cycle is
    # spent between some batch's first and last write, where a kill tests the replay.
    env = {"METERLINE_BATCH_MAX_EVENTS": "2000", "METERLINE_BATCH_MAX_SECONDS": "0.3",
           "METERLINE_RECONCILE_INTERVAL_SECONDS": "1"}
    stack = stack_factory(**env).start()
    stack.client.post("/api/v1/meterline/catalog", {"catalog": catalog(SUBSCRIPTIONS)})

    chunks = [workload.messages[i::KILLS] for i in range(KILLS)]  # interleaved, one per cycle
    kills = 0
    for chunk in chunks:
        produce(kafka_bootstrap, stack.topic, chunk)
        time.sleep(rng.uniform(0.02, 1.2))  # a random moment: fetching, writing, committing
        stack.process.send_signal(signal.SIGKILL)
        assert stack.process.wait(30) == -signal.SIGKILL
        kills += 1
        stack = stack_factory(data_dir=stack.data_dir, name=stack.name, **env).start()

    total = len(workload.messages)
    status = stack.wait_consumed(total, timeout=600)
    assert kills >= KILLS
    report = stack.client.get("/api/v1/meterline/reconcile")
    assert report["ok"] is True, report
    assert report["totals"] == {
        "consumed": total,
        "stored": workload.expected.unique,
        "duplicates": workload.expected.duplicates,
        "dead_letters": 0,
    }
    assert sum(p["consumed"] for p in status["partitions"]) == total
    dedup = report["dedup_index"]
    assert dedup["keys"] == workload.expected.unique  # one key per stored event, no more
    print(f"dedup index: {dedup}")  # reported in the README (bytes per key on disk)
    check_usage(usage_over_http(stack.client), workload.expected, SUBSCRIPTIONS)
    # the reconciliation gauge Prometheus alerts on: present for every partition, all 0
    deadline = time.monotonic() + 30
    gauges: list[str] = []
    while time.monotonic() < deadline and len(gauges) < 4:
        with urllib.request.urlopen(stack.client.url + "/metrics", timeout=10) as resp:
            gauges = [line for line in resp.read().decode().splitlines()
                      if line.startswith("meterline_reconciliation_mismatch{")]
        time.sleep(0.5)
    assert len(gauges) == 4 and all(line.endswith(" 0.0") for line in gauges), gauges
    if KILLS >= 10:  # with this many kills, some land between a batch's first and last write
        logs = "".join(p.read_text(errors="replace") for p in stack.data_dir.glob("stack-*.log"))
        print(f"replayed batches: {logs.count('replaying unfinished batch')}")
        assert "replaying unfinished batch" in logs
