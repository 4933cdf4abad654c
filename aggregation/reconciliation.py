"""Reconciliation rules: every consumed message is stored, a duplicate, or a dead letter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def reconcile_report(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-partition results plus totals; ``ok`` is False on any mismatch."""
    partitions = [{**row, "problems": partition_problems(row)} for row in rows]
    totals = {
        key: sum(int(r[key]) for r in rows)
        for key in ("consumed", "stored", "duplicates", "dead_letters")
    }
    return {
        "ok": all(not p["problems"] for p in partitions),
        "totals": totals,
        "partitions": partitions,
    }
