"""Where each partition stands against the broker's log: lag and the stall gauges.

Measured on a timer from the broker (a stalled pipeline commits nothing, so nothing done after
a commit would show a stall), for the partitions the worker's consumer owns.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from streams.health import PipelineHealth
from streams.metrics import Metrics

log = logging.getLogger("meterline.pipeline")


class BrokerView(Protocol):
    """What the progress needs of the consumer (``streams.fetcher.Fetcher`` fits)."""

    def assignment(self) -> set[int]:
        """The partitions this worker owns now."""

    def log_offsets(self, partitions: list[int] | None = None) -> dict[int, tuple[int, int]]:
        """Per partition: the broker's (first, end) offsets (blocking)."""


class BrokerProgress:
    """Lag and stall gauges of one worker.

    ``committed_next`` (partition → first offset after the last committed batch) is the
    pipeline's own dict, read here, never written."""

    def __init__(
        self, topic: str, health: PipelineHealth, metrics: Metrics, committed_next: dict[int, int]
    ):
        self.topic = topic
        self.health = health
        self.metrics = metrics
        self.committed_next = committed_next

    async def refresh(self, broker: BrokerView) -> None:
        """Set the lag (end offset − next offset to commit), stall and seconds-since-commit
        gauges of the partitions ``broker``'s consumer owns."""
        topic = self.topic
        assigned = sorted(broker.assignment())
        try:
            offsets = await asyncio.to_thread(broker.log_offsets, assigned) if assigned else {}
        except Exception as exc:  # the broker away or a rebalance: measure again next time
            log.warning("cannot read end offsets: %r", exc)
            offsets = {}
        for partition, (_, end) in offsets.items():
            committed = self.committed_next.get(partition)
            if committed is None:
                continue
            lag = max(0, end - committed)
            self.health.lag[partition] = lag
            self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)
        stalled = self.health.stalled_partitions()
        self.metrics.pipeline_stalled.set(1 if stalled else 0)
        now = self.health.clock()
        for partition, since in self.health.last_progress.items():
            self.metrics.seconds_since_commit.labels(topic, str(partition)).set(now - since)
        if stalled:
            log.error("pipeline stalled on partitions %s (store failing for %.0fs: %s)",
                      stalled, self.health.store_failing_for(), self.health.last_error)
