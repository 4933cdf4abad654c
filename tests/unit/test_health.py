"""Stall detection (streams.health): work to do and no progress for stall_seconds."""

from __future__ import annotations

from streams.health import PipelineHealth


def health() -> tuple[PipelineHealth, list[float]]:
    now = [0.0]
    return PipelineHealth(stall_seconds=60, clock=lambda: now[0]), now


def test_an_idle_partition_is_not_stalled():
    h, now = health()
    h.assigned([0])
    now[0] = 3600
    assert h.stalled_partitions() == []


def test_a_partition_with_lag_and_no_commit_is_stalled():
    h, now = health()
    h.assigned([0, 1])
    h.lag[0] = 5
    now[0] = 59.9
    assert h.stalled_partitions() == []
    now[0] = 60
    assert h.stalled_partitions() == [0]
    h.committed([0])
    assert h.stalled_partitions() == []
    assert h.seconds_since_commit(0) == 0 and h.seconds_since_commit(1) is None


def test_a_batch_in_hand_counts_as_work():
    h, now = health()
    h.assigned([2])
    h.in_hand.add(2)
    now[0] = 61
    assert h.stalled_partitions() == [2]


def test_a_store_failing_for_stall_seconds_stalls_every_partition():
    h, now = health()
    h.assigned([0, 1])
    h.store_failed("connection refused")
    now[0] = 30
    h.store_failed("connection refused")  # the failure run started at 0
    assert h.store_failing_for() == 30 and h.stalled_partitions() == []
    now[0] = 60
    assert h.stalled_partitions() == [0, 1]
    h.store_ok()
    assert h.store_failing_for() == 0 and h.stalled_partitions() == []


def test_revoked_partitions_are_forgotten():
    h, now = health()
    h.assigned([0])
    h.lag[0] = 1
    h.in_hand.add(0)
    h.revoked([0])
    now[0] = 999
    assert h.stalled_partitions() == [] and h.consuming
