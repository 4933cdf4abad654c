"""What a worker does when partitions are assigned to it: reload the dedup filter, finish or
roll back the batches a crash left open, and find where each partition resumes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

from sinks.store import BatchStore, OpenBatch
from streams.batch import DAY_MS
from streams.committer import ReadRanges
from streams.metrics import Metrics
from streams.observer import PipelineStats
from streams.prepare import BatchPreparer, PreparedBatch
from streams.retry import StoreRetry
from streams.seen_filter import SeenFilter

log = logging.getLogger("meterline.pipeline")

# The dedup filter holds the identities of the window plus this margin: a batch looks back one
# window from its oldest message, so messages up to a day old (consumer lag) use the filter;
# an older backlog (a backfill) has every identity looked up in the store instead.
SEEN_FILTER_MARGIN_MS = DAY_MS


class Recovery:
    """The assignment steps of one worker (topic, log epoch)."""

    def __init__(
        self, *, topic: str, log_epoch: str, dedup_window_days: int, store: BatchStore,
        retry: StoreRetry, metrics: Metrics, stats: PipelineStats, preparer: BatchPreparer,
        prepare: Callable[..., PreparedBatch],
        commit: Callable[[PreparedBatch], Awaitable[PreparedBatch]],
        read_ranges: ReadRanges, clock: Callable[[], float],
    ):
        self.topic = topic
        self.log_epoch = log_epoch
        self.dedup_window_days = dedup_window_days
        self.store = store
        self.retry = retry
        self.metrics = metrics
        self.stats = stats
        self.preparer = preparer
        self.prepare = prepare
        self.commit = commit
        self.read_ranges = read_ranges
        self.clock = clock

    async def resume_offsets(self) -> dict[int, int]:
        """Per partition, the first offset after the last committed batch of this log epoch
        (a partition with none is read from its beginning)."""
        offsets: dict[int, int] = await asyncio.to_thread(
            self.retry, "read offsets", self.store.committed_offsets, self.log_epoch, self.topic,
        )
        return offsets

    async def load_seen_filter(self) -> None:
        """Rebuild the filter of stored identities from the store's dedup index (the window).

        Run at each assignment, once the batch in hand is written: the partitions may come
        from another worker, whose stored identities are then in the store."""
        started = time.perf_counter()
        window_ms = self.dedup_window_days * DAY_MS
        since_ms = int(self.clock() * 1000) - window_ms - SEEN_FILTER_MARGIN_MS

        def load() -> SeenFilter:
            seen = SeenFilter(since_ms=since_ms)
            for chunk in self.store.stored_identities(since_ms):
                seen.add_packed(chunk)
            return seen

        seen: SeenFilter = await asyncio.to_thread(self.retry, "read dedup keys", load)
        self.preparer.seen = seen
        self.metrics.dedup_filter_identities.set(len(seen))
        log.info("dedup filter: %d stored identities loaded in %.2fs (%d KB)", len(seen),
                 time.perf_counter() - started, seen.nbytes // 1024)

    async def replay_open_batches(self) -> None:
        """Finish or roll back every begun-but-unfinished batch of the topic, of any log epoch.

        A batch of this log epoch is finished: its exact ranges are re-read and committed. A
        batch of another epoch cannot be: its log is gone (the embedded broker keeps topics in
        memory, and a new cluster is a new log). What it wrote is deleted and it is recorded as
        rolled back, so a producer re-sending its events has them stored, not taken for
        duplicates; ``reconcile`` lists it.
        """
        open_batches = await asyncio.to_thread(
            self.retry, "read open batches", self.store.open_batches, self.topic,
        )
        by_id: dict[str, list[OpenBatch]] = defaultdict(list)
        for ob in open_batches:
            by_id[ob.batch_id].append(ob)
        for bid, parts in by_id.items():
            if parts[0].log_epoch != self.log_epoch:
                await self._roll_back(bid, parts)
            else:
                await self._replay(bid, parts)

    async def _roll_back(self, bid: str, parts: list[OpenBatch]) -> None:
        reason = f"its log (epoch {parts[0].log_epoch}) is gone; the log is now {self.log_epoch}"
        log.error("rolling back unfinished batch %s of %d messages: %s", bid,
                  sum(p.consumed for p in parts), reason)
        await asyncio.to_thread(
            self.retry, "roll back batch", self.store.roll_back_batch, self.topic, parts, reason,
        )
        self.metrics.rolled_back_batches.inc()

    async def _replay(self, bid: str, parts: list[OpenBatch]) -> None:
        ranges = {p.partition: (p.from_offset, p.to_offset) for p in parts}
        messages = await self.read_ranges(ranges)
        prepared = await asyncio.to_thread(self.prepare, messages)
        if prepared.batch_id != bid:
            raise RuntimeError(f"replay of {bid} read different offsets ({prepared.batch_id})")
        log.warning("replaying unfinished batch %s %s", bid, ranges)
        await self.commit(prepared)
        self.stats.replayed_batches += 1
        self.metrics.replayed_batches.inc()
