"""Reconciliation rules over per-partition counts."""

from __future__ import annotations

import pytest

from aggregation.reconciliation import LogView, log_problems, partition_problems, reconcile_report
from sinks.store import OpenBatch

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


ROW = {**GOOD, "log_epoch": "e1", "topic": "raw", "partition": 0}


def test_reconcile_compares_with_the_brokers_end_offsets():
    """Issue 16, finding 3: reconcile said ok with 0 consumed while the log held messages."""
    nothing_counted = reconcile_report([], log=LogView("e1", "raw", {0: (0, 5)}))
    assert nothing_counted["ok"] is False
    [behind] = nothing_counted["log"]["problems"]
    assert (behind["partition"], behind["unprocessed"]) == (0, 5)
    caught_up = reconcile_report([ROW], log=LogView("e1", "raw", {0: (0, 10)}))
    assert caught_up["ok"] is True and caught_up["log"]["checked"] is True
    assert reconcile_report([ROW], log=LogView("e1", "raw", {0: (0, 12)}))["ok"] is False
    # counts of another log epoch do not count for this log
    assert reconcile_report([ROW], log=LogView("e2", "raw", {0: (0, 10)}))["ok"] is False


def test_offsets_deleted_by_the_broker_before_being_counted_are_named():
    [lost] = log_problems([ROW], LogView("e1", "raw", {0: (15, 15)}))
    assert lost["problems"] == ["the broker deleted offsets 10..14 before they were counted"]


def test_a_batch_left_open_is_flagged_after_the_grace_period():
    """Issue 16, finding 11: reconcile counted only finished batches."""
    begun = OpenBatch("B", 0, 10, 19, "e0", 10, begun_at_ms=1_000)
    assert reconcile_report([GOOD], open_batches=[begun], now_ms=1_000 + 59_999)["ok"] is True
    late = reconcile_report([GOOD], open_batches=[begun], now_ms=1_000 + 60_000)
    assert late["ok"] is False
    assert late["open_batches"][0]["batch_id"] == "B"


def test_rolled_back_batches_are_listed():
    rolled = {"batch_id": "B", "log_epoch": "e0", "consumed": 3}
    report = reconcile_report([GOOD], rolled_back=[rolled])
    assert report["rolled_back"] == [rolled]
