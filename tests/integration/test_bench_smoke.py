"""`make bench` at toy sizes: every phase runs, the JSON has every field, the ratio is a number.

The numbers themselves are not checked (a toy run measures start-up more than throughput).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

REQUIRED = {
    "timestamp": (), "command": (), "total_seconds": (),
    "machine": ("nproc", "cpu_model", "python"),
    "config": ("events", "baseline_events", "freshness_seconds", "read_events",
               "subscriptions", "partitions", "avro_ratio", "dup_ratio"),
    "workload": ("backlog", "baseline_prefix", "all_phases", "produce_seconds"),
    "meterline": ("events", "seconds", "events_per_s", "batches", "events_per_batch",
                  "stats_at_target", "peak_rss_mb", "store_totals", "exact", "cpu_seconds"),
    "baseline": ("events", "prefix", "seconds", "events_per_s", "dedup", "stored",
                 "duplicates", "inserts", "peak_rss_mb"),
    "ratio": (),
    "ceiling": ("events", "seconds", "events_per_s", "cpu_cores_used", "cpu_us_per_event",
                "broker_cpu_us_per_event", "python_us_per_event", "sql_us_per_event", "rows",
                "ratio_to_meterline"),
    "inserts": ("events", "dedup_keys", "usage_rollups", "batches"),
    "freshness": ("target_events_per_s", "sent", "achieved_events_per_s", "samples",
                  "p50_ms", "p99_ms", "max_ms", "definition"),
    "billing_read": ("events_stored", "reads", "p50_ms", "p99_ms", "max_ms"),
    "phases": (),
    "targets": (),
}


def test_bench_runs_end_to_end_at_toy_sizes(tmp_path):
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--events", "3000", "--baseline-events", "1000",
         "--freshness-seconds", "2", "--subscriptions", "50", "--reads", "20",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=90,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert elapsed < 60, f"smoke run took {elapsed:.0f}s"

    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text())
    for section, fields in REQUIRED.items():
        assert result.get(section) is not None, section
        for name in fields:
            assert result[section].get(name) is not None, f"{section}.{name}"
    for table in REQUIRED["inserts"]:
        assert set(result["inserts"][table]) >= {"inserts", "rows", "inserts_per_s",
                                                 "rows_per_insert"}
    assert isinstance(result["ratio"], int | float) and result["ratio"] > 0
    steps = result["meterline"]["step_seconds"]  # CPU per pure step, for the table's rows
    assert all(steps.get(f"cpu_{step}", 0) > 0 for step in ("parse", "enrich", "wire")), steps
    assert result["meterline"]["events_per_s"] > 0 and result["baseline"]["events_per_s"] > 0
    assert result["meterline"]["exact"] is True, result["meterline"]["store_totals"]
    assert result["freshness"]["samples"] == result["freshness"]["sent"]
    each = result["freshness"]["batches"]["each"]  # [events, prepare s, commit s, slowest ms]
    assert len(each) == result["freshness"]["batches"]["batches"]
    assert max(b[3] for b in each) == result["freshness"]["max_ms"]
    ceiling = result["ceiling"]  # every message read reaches each table once
    assert ceiling["events"] == result["config"]["ceiling_events"] == 3000
    assert ceiling["rows"]["events"] == ceiling["rows"]["dedup_keys"] == 3000
    assert ceiling["rows"]["rolled_up"] == 3000 and 0 < ceiling["rows"]["usage_rollups"] < 3000
    assert ceiling["ratio_to_meterline"] > 0
    assert {t["name"] for t in result["targets"]} >= {
        "throughput", "ratio vs Faust baseline", "freshness p99 @ half max rate",
        "billing read p99", "peak RSS, worker",
    }
    assert all(isinstance(t["pass"], bool) for t in result["targets"])
    assert "ratio Meterline / baseline" in proc.stdout
    assert "columnar happy-path ceiling" in proc.stdout
    assert "PASS" in proc.stdout or "FAIL" in proc.stdout
