"""`meterline demo` (what `make demo` runs) works with no configuration and prices usage."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_prints_reconciled_priced_usage(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    result = subprocess.run(
        [sys.executable, "-m", "meterline.cli", "demo", "--data-dir", str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "'dead_letters': 2" in out and "'duplicates': 50" in out
    assert "reconciled=True" in out
    # both subscriptions priced, and the graduated charge crossed into its paid tier
    totals = re.findall(r"^(sub_\w+)\s+TOTAL\s+([\d.]+) EUR$", out, flags=re.M)
    assert [name for name, _ in totals] == ["sub_acme", "sub_globex"]
    assert all(float(amount) > 0 for _, amount in totals)
    calls = re.findall(r"api_calls \(graduated\)\s+(\d+)\s+\d+\s+([\d.]+) EUR", out)
    assert calls and all(int(units) > 500 and float(amount) > 5 for units, amount in calls)
