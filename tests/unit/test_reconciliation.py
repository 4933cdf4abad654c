"""Reconciliation rules over per-partition counts."""

from __future__ import annotations

import pytest

from aggregation.reconciliation import partition_problems, reconcile_report

GOOD = {"consumed": 10, "stored": 7, "duplicates": 2, "dead_letters": 1, "stored_rows": 7,
        "dead_letter_rows": 1, "first_offset": 0, "last_offset": 9}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"consumed": 11, "last_offset": 10}, "consumed 11 != stored + duplicates"),
        ({"stored_rows": 8}, "events table holds 8"),
        ({"dead_letter_rows": 0}, "table holds 0"),
        ({"last_offset": 8}, "processed twice"),
    ],
    ids=["outcomes-missing", "stored-rows-differ", "dead-letter-rows-differ", "overlap"],
)
def test_each_mismatch_is_named(change, needle):
    problems = partition_problems({**GOOD, **change})
    assert any(needle in p for p in problems), problems


def test_a_gap_in_offsets_is_not_a_mismatch():
    # transaction markers or compaction leave gaps; only overlaps mean double counting
    assert partition_problems({**GOOD, "last_offset": 20}) == []


def test_report_totals_and_ok():
    report = reconcile_report([GOOD, {**GOOD, "stored_rows": 6}])
    assert report["ok"] is False
    assert report["totals"] == {"consumed": 20, "stored": 14, "duplicates": 4, "dead_letters": 2}
    assert report["partitions"][0]["problems"] == []
    assert reconcile_report([GOOD])["ok"] is True
    assert reconcile_report([])["ok"] is True
