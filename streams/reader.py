"""Re-reading exact offset ranges of the raw topic (replays and quarantines)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.batch import RawMessage

READ_TIMEOUT_SECONDS = 60


async def read_ranges(
    kafka_options: dict[str, Any], topic: str, ranges: dict[int, tuple[int, int]]
) -> list[RawMessage]:
    """The messages of ``topic`` in ``ranges`` (partition → first and last offset, inclusive),
    in partition-offset order; raises RuntimeError when they cannot all be read in time."""
    reader = AIOKafkaConsumer(**kafka_options, enable_auto_commit=False)
    await reader.start()
    try:
        tps = {TopicPartition(topic, p): r for p, r in ranges.items()}
        reader.assign(list(tps))
        for tp, (first, _last) in tps.items():
            reader.seek(tp, first)
        got: dict[int, list[RawMessage]] = defaultdict(list)
        remaining = set(tps)
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        while remaining:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot re-read offsets {ranges} of {topic}")
            fetched = await reader.getmany(*remaining, timeout_ms=500)
            for tp, records in fetched.items():
                last = tps[tp][1]
                got[tp.partition].extend(r for r in records if r.offset <= last)
                if records and records[-1].offset >= last:
                    remaining.discard(tp)
        return [m for p in sorted(got) for m in got[p]]
    finally:
        await reader.stop()
