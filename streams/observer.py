"""What a committed batch changes in a worker's counters, gauges and progress."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from streams.health import PipelineHealth
from streams.metrics import Metrics
from streams.prepare import PreparedBatch


@dataclass
class PipelineStats:
    """Running counters since start (the reconciled totals live in the ``batches`` table)."""

    batches: int = 0
    consumed: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    replayed_batches: int = 0
    store_retries: int = 0
    last_batch_at: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)


class CommitObserver:
    """Counts committed batches, observes their freshness and watermark, and keeps
    ``committed_next``: per partition, the first offset after the last committed batch."""

    def __init__(
        self, *, topic: str, metrics: Metrics, health: PipelineHealth, stats: PipelineStats,
        clock: Callable[[], float],
    ):
        self.topic = topic
        self.metrics = metrics
        self.health = health
        self.stats = stats
        self.clock = clock
        self.committed_next: dict[int, int] = {}
        self._watermark_ms: dict[int, int] = {}  # largest event timestamp committed

    def assigned(self, starts: Mapping[int, int]) -> None:
        """Partitions now owned, each resuming at its offset."""
        self.committed_next.update(starts)
        self.health.assigned(starts)

    def committed(self, batch: PreparedBatch) -> None:
        """A batch's 'done' marker is written."""
        self._observe(batch)
        self.committed_next.update({p: t.to_offset + 1 for p, t in batch.tallies.items()})
        self.health.committed(batch.tallies)
        self._count(batch)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop what this worker reports of partitions it no longer owns."""
        partitions = list(partitions)
        self.health.revoked(partitions)
        for partition in partitions:
            self._watermark_ms.pop(partition, None)
            self.committed_next.pop(partition, None)
            for gauge in (self.metrics.consumer_lag, self.metrics.watermark,
                          self.metrics.seconds_since_commit):
                with contextlib.suppress(KeyError):  # never set on this worker
                    gauge.remove(self.topic, str(partition))

    def _observe(self, batch: PreparedBatch) -> None:
        """Freshness (a message's Kafka timestamp to now, when its rows are visible in the
        aggregates, for the batch's sample) and the event-time watermark."""
        now = self.clock()
        observe = self.metrics.freshness.observe
        for timestamp_ms in batch.freshness_sample_ms:
            observe(max(0.0, now - timestamp_ms / 1000))
        for partition, timestamp_ms in batch.newest_event_ms.items():
            if timestamp_ms > self._watermark_ms.get(partition, -1):
                self._watermark_ms[partition] = timestamp_ms
                self.metrics.watermark.labels(self.topic, str(partition)).set(
                    timestamp_ms / 1000
                )

    def _count(self, batch: PreparedBatch) -> None:
        stats = self.stats
        stats.batches += 1
        stats.last_batch_at = self.clock()
        self.metrics.last_batch.set(stats.last_batch_at)
        messages = self.metrics.messages
        for partition, tally in batch.tallies.items():
            p = str(partition)
            messages.labels(self.topic, p, "consumed").inc(tally.consumed)
            messages.labels(self.topic, p, "stored").inc(tally.stored)
            messages.labels(self.topic, p, "duplicate").inc(tally.duplicates)
            messages.labels(self.topic, p, "dead_letter").inc(tally.dead_letters)
            self.metrics.batch_size.observe(tally.consumed)
            stats.consumed += tally.consumed
            stats.stored += tally.stored
            stats.duplicates += tally.duplicates
            stats.dead_letters += tally.dead_letters
        for letter in batch.dead_letters:
            stats.by_reason[letter.code] = stats.by_reason.get(letter.code, 0) + 1
            self.metrics.dead_letters.labels(letter.code).inc()
