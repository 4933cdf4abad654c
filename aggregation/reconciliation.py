"""Reconciliation rules: every consumed message is stored, a duplicate, or a dead letter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def partition_problems(row: Mapping[str, Any]) -> list[str]:
    """What is wrong with one partition's counts (empty when it reconciles).

    ``row`` holds the manifest's counters (consumed, stored, duplicates, dead_letters), the
    counts recounted from the stored rows (stored_rows, dead_letter_rows) and the offset range.
    """
    problems = []
    outcomes = row["stored"] + row["duplicates"] + row["dead_letters"]
    if row["consumed"] != outcomes:
        problems.append(f"consumed {row['consumed']} != stored + duplicates + dead letters "
                        f"{outcomes}")
    if row["stored"] != row["stored_rows"]:
        problems.append(f"manifest says {row['stored']} stored, events table holds "
                        f"{row['stored_rows']}")
    if row["dead_letters"] != row["dead_letter_rows"]:
        problems.append(f"manifest says {row['dead_letters']} dead letters, table holds "
                        f"{row['dead_letter_rows']}")
    span = row["last_offset"] - row["first_offset"] + 1
    if row["consumed"] > span:
        problems.append(f"{row['consumed']} messages counted in an offset range of {span}: "
                        f"some offset was processed twice")
    return problems


@dataclass(frozen=True)
class LogView:
    """The broker's log of the raw topic, as the worker sees it now: its log epoch, and per
    partition the first offset still held and the end offset (one past the last message)."""

    log_epoch: str
    topic: str
    offsets: Mapping[int, tuple[int, int]]


def log_problems(rows: Sequence[Mapping[str, Any]], log: LogView) -> list[dict[str, Any]]:
    """Partitions of the broker's log whose messages are not all counted yet.

    Counted means in a committed batch: a partition is behind when its end offset is past the
    last counted offset, and has lost messages when the broker deleted offsets (retention)
    that were never counted."""
    counted = {
        r["partition"]: int(r["last_offset"]) + 1 for r in rows
        if r["log_epoch"] == log.log_epoch and r["topic"] == log.topic
    }
    out = []
    for partition, (first, end) in sorted(log.offsets.items()):
        next_offset = counted.get(partition, 0)
        problems = []
        if next_offset < first:
            problems.append(f"the broker deleted offsets {next_offset}..{first - 1} before "
                            f"they were counted")
        unprocessed = max(0, end - max(next_offset, first))
        if unprocessed:
            problems.append(f"{unprocessed} messages in the broker's log are not counted yet "
                            f"(offsets {max(next_offset, first)}..{end - 1})")
        if problems:
            out.append({"topic": log.topic, "partition": partition, "first_offset": first,
                        "end_offset": end, "next_offset": next_offset,
                        "unprocessed": unprocessed, "problems": problems})
    return out


def reconcile_report(
    rows: Sequence[Mapping[str, Any]],
    *,
    open_batches: Sequence[Any] = (),
    rolled_back: Sequence[Mapping[str, Any]] = (),
    log: LogView | None = None,
    now_ms: int = 0,
    open_grace_ms: int = 60_000,
) -> dict[str, Any]:
    """Per-partition results plus totals; ``ok`` is False on any mismatch.

    Also not ok: a batch begun more than ``open_grace_ms`` ago and never finished
    (``open_batches``, from the store), and, when ``log`` is given, messages of the broker's
    log that no committed batch counts. ``rolled_back`` batches are listed: their log was gone
    at restart, so their messages were given up (their producers must send them again).
    """
    partitions = [{**row, "problems": partition_problems(row)} for row in rows]
    totals = {
        key: sum(int(r[key]) for r in rows)
        for key in ("consumed", "stored", "duplicates", "dead_letters")
    }
    stale = [
        {"batch_id": b.batch_id, "log_epoch": b.log_epoch, "partition": b.partition,
         "from_offset": b.from_offset, "to_offset": b.to_offset, "begun_at_ms": b.begun_at_ms,
         "problem": "begun and never finished"}
        for b in open_batches if now_ms - b.begun_at_ms >= open_grace_ms
    ]
    behind = log_problems(rows, log) if log is not None else []
    return {
        "ok": all(not p["problems"] for p in partitions) and not stale and not behind,
        "totals": totals,
        "partitions": partitions,
        "open_batches": stale,
        "log": {"checked": log is not None, "problems": behind},
        "rolled_back": [dict(r) for r in rolled_back],
    }
