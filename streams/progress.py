"""Where each partition stands against the broker's log: lag, the stall gauges, log offsets.

Measured on a timer from the broker (a stalled pipeline commits nothing, so nothing done after
a commit would show a stall), for the partitions the worker's consumer owns.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import TopicPartition

from streams.health import PipelineHealth
from streams.metrics import Metrics

log = logging.getLogger("meterline.pipeline")


class BrokerProgress:
    """Lag and stall gauges of one worker, and the broker's offsets of the raw topic.

    ``committed_next`` (partition → first offset after the last committed batch) is the
    pipeline's own dict, read here, never written."""

    def __init__(
        self, topic: str, health: PipelineHealth, metrics: Metrics, committed_next: dict[int, int]
    ):
        self.topic = topic
        self.health = health
        self.metrics = metrics
        self.committed_next = committed_next

    async def refresh(self, consumer: Any) -> None:
        """Set the lag (end offset − next offset to commit), stall and seconds-since-commit
        gauges of the partitions ``consumer`` owns."""
        topic = self.topic
        assigned = [tp for tp in consumer.assignment() if tp.topic == topic]
        try:
            ends = await consumer.end_offsets(assigned) if assigned else {}
        except Exception as exc:  # the broker away or a rebalance: measure again next time
            log.warning("cannot read end offsets: %r", exc)
            ends = {}
        for tp, listed in ends.items():
            committed = self.committed_next.get(tp.partition)
            if committed is None:
                continue
            lag = max(0, log_end(consumer, tp, listed) - committed)
            self.health.lag[tp.partition] = lag
            self.metrics.consumer_lag.labels(topic, str(tp.partition)).set(lag)
        stalled = self.health.stalled_partitions()
        self.metrics.pipeline_stalled.set(1 if stalled else 0)
        now = self.health.clock()
        for partition, since in self.health.last_progress.items():
            self.metrics.seconds_since_commit.labels(topic, str(partition)).set(now - since)
        if stalled:
            log.error("pipeline stalled on partitions %s (store failing for %.0fs: %s)",
                      stalled, self.health.store_failing_for(), self.health.last_error)

    async def log_offsets(self, consumer: Any) -> dict[int, tuple[int, int]]:
        """Per partition of the topic: the broker's (first, end) offsets."""
        partitions = consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        if not tps:
            return {}
        firsts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        return {tp.partition: (firsts[tp], log_end(consumer, tp, ends[tp])) for tp in tps}


def log_end(consumer: Any, tp: TopicPartition, listed: int) -> int:
    """The end offset of ``tp``: the broker's answer to a ListOffsets request, or the high
    watermark of the last fetch when larger. Tansu (the embedded broker) answers ListOffsets
    with the last record batch's base offset + 1, short of the end by the batch's other
    records; its fetch responses carry the right high watermark."""
    if tp not in consumer.assignment():
        return listed
    return max(listed, consumer.highwater(tp) or 0)
