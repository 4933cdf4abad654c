"""The batch hot path of one worker: fetch → prepare → commit, batch after batch.

A confluent-kafka group consumer fetches in bulk on a thread of its own
(:mod:`streams.fetcher`; Faust hosts the pipeline as a service, but its per-event streams are
far too slow for this path). :class:`Pipeline` owns the batching, and wires the steps, each in
its own module:

* :mod:`streams.prepare`: decode, dedup, enrich, roll up (:mod:`streams.batch`) and the wire
  tables of a batch;
* :mod:`streams.committer`: THE commit protocol (manifest, INSERT order, offsets) and its
  crash-recovery argument, and the quarantine of messages the store refuses;
* :mod:`streams.recovery`: what an assignment does (dedup filter, open batches, resume
  offsets); :mod:`streams.observer`: counters and gauges of committed batches;
  :mod:`streams.progress`: lag and stalls from the broker; :mod:`streams.retry`: store retries.

The ClickHouse manifest, not Kafka's committed offsets, decides where a partition resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from enrichment.catalog_index import CatalogIndex
from sinks.store import BatchStore
from streams.batch import RawMessage, RawRecord
from streams.committer import STORAGE_REJECTED, VALUE_OUT_OF_RANGE, Committer
from streams.fetcher import Chunk, Fetcher, consumer_config
from streams.gc_policy import TimedCollector
from streams.health import PipelineHealth
from streams.kafka import rdkafka_connection_of
from streams.metrics import Metrics
from streams.observer import CommitObserver, PipelineStats
from streams.prepare import BatchPreparer, PreparedBatch, Rejected
from streams.progress import BrokerProgress
from streams.reader import read_ranges
from streams.recovery import Recovery
from streams.retry import PipelineStopped, StoreRetry
from streams.seen_filter import SeenFilter

__all__ = [
    "STORAGE_REJECTED", "VALUE_OUT_OF_RANGE", "Pipeline", "PipelineConfig", "PipelineStats",
    "PipelineStopped", "PreparedBatch",
]

log = logging.getLogger("meterline.pipeline")


@dataclass(frozen=True)
class PipelineConfig:
    """What the hot path needs from the settings."""

    topic: str
    dead_letter_topic: str
    group_id: str
    batch_max_events: int = 50_000
    batch_max_seconds: float = 0.1
    dedup_window_days: int = 35
    session_timeout_ms: int = 6000
    retry_initial_seconds: float = 0.2
    retry_max_seconds: float = 10.0
    gc_collect_seconds: float = 10.0  # 0: Python's automatic cyclic GC (see streams.gc_policy)
    stall_seconds: float = 60.0  # no progress for this long with work to do: stalled


@dataclass
class _InFlight:
    """The batch being written, and the task writing it."""

    task: asyncio.Task[PreparedBatch]
    batch: PreparedBatch


class Pipeline:
    """The raw-topic consumer and batch writer of one worker process."""

    def __init__(
        self,
        *,
        config: PipelineConfig,
        store: BatchStore,
        kafka_options: dict[str, Any],
        log_epoch: str,
        catalog: Callable[[], CatalogIndex],
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        fetch_connection: Mapping[str, str] | None = None,
    ):
        """``kafka_options``: the aiokafka connection (dead-letter producer, re-reads);
        ``fetch_connection``: the same connection in librdkafka's settings, for the fetcher
        (by default derived from ``kafka_options``, which TLS cannot be)."""
        self.config = config
        self.store = store
        self.kafka_options = kafka_options
        self.fetch_connection = fetch_connection
        self.log_epoch = log_epoch
        self.clock = clock
        self.stats = PipelineStats()
        self.metrics = metrics or Metrics()
        self.health = PipelineHealth(stall_seconds=config.stall_seconds)
        self._gc = TimedCollector(config.gc_collect_seconds, self.metrics.gc_seconds.observe)
        self._fetcher: Fetcher | None = None
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._in_flight: _InFlight | None = None
        self._pending: dict[int, list[RawMessage]] = defaultdict(list)
        self._generation = 0  # of the fetcher's assignment: older chunks are dropped
        self._pending_since = 0.0
        self._stopping = asyncio.Event()
        self._abort = threading.Event()  # stops store retries when the worker shuts down
        # First offset not yet in a batch, per assigned partition. Records below it (fetched
        # before a seek) are dropped: an offset is never processed in two batches.
        self._next_offset: dict[int, int] = {}
        self._wire_steps(catalog)

    def _wire_steps(self, catalog: Callable[[], CatalogIndex]) -> None:
        """Build the steps (each module's doc says what it owns)."""
        config, metrics = self.config, self.metrics

        def count_retry() -> None:
            self.stats.store_retries += 1

        self.retry = StoreRetry(
            initial_seconds=config.retry_initial_seconds, max_seconds=config.retry_max_seconds,
            abort=self._abort, health=self.health, metrics=metrics, on_retry=count_retry,
        )
        self.preparer = BatchPreparer(
            topic=config.topic, log_epoch=self.log_epoch,
            dedup_window_days=config.dedup_window_days, store=self.store, catalog=catalog,
            retry=self.retry, metrics=metrics, clock=self.clock,
        )
        self.committer = Committer(
            topic=config.topic, dead_letter_topic=config.dead_letter_topic,
            log_epoch=self.log_epoch, store=self.store, retry=self.retry, metrics=metrics,
            health=self.health, producer=lambda: self._producer,
            prepare=lambda *a, **k: self.prepare(*a, **k),
            read_ranges=lambda ranges: self._read_ranges(ranges),
        )
        self.observer = CommitObserver(
            topic=config.topic, metrics=metrics, health=self.health, stats=self.stats,
            clock=self.clock,
        )
        self.recovery = Recovery(
            topic=config.topic, log_epoch=self.log_epoch,
            dedup_window_days=config.dedup_window_days, store=self.store, retry=self.retry,
            metrics=metrics, stats=self.stats, preparer=self.preparer,
            prepare=lambda *a, **k: self.prepare(*a, **k),
            commit=lambda batch: self.commit_batch(batch, commit_kafka=False),
            read_ranges=lambda ranges: self._read_ranges(ranges), clock=self.clock,
        )
        self._progress = BrokerProgress(
            config.topic, self.health, metrics, self.observer.committed_next)

    @property
    def seen_filter(self) -> SeenFilter | None:
        """The in-memory filter of stored identities (None before the first assignment)."""
        return self.preparer.seen

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect the dead-letter producer and the raw-topic consumer."""
        self._producer = AIOKafkaProducer(**self.kafka_options, acks="all")
        await self._producer.start()
        config = self.config
        chunk = min(config.batch_max_events, 10_000)
        connection = self.fetch_connection or rdkafka_connection_of(self.kafka_options)
        self._fetcher = Fetcher(
            topic=config.topic,
            config=consumer_config(connection, config.group_id, config.session_timeout_ms, chunk),
            on_assigned=self._assigned, on_revoked=self._revoked, chunk_messages=chunk,
        )
        await self._fetcher.start()
        self._gc.start()

    async def stop(self) -> None:
        """Finish the batch in hand, then close the Kafka clients."""
        self._stopping.set()
        self._abort.set()
        async with self._lock:
            self._pending.clear()  # unwritten messages are re-read from the manifest offsets
            with contextlib.suppress(PipelineStopped):  # abandoned: replayed at next start
                await self._drain()
        if self._fetcher is not None:
            await self._fetcher.close()
        if self._producer is not None:
            await self._producer.stop()
        await self._gc.stop()

    async def run(self) -> None:
        """Fetch and write batches until :meth:`stop`."""
        try:
            await self._run()
        except PipelineStopped:
            log.info("pipeline stopped with a batch in hand; it is replayed at next start")

    async def _run(self) -> None:
        fetcher = self._fetcher
        assert fetcher is not None
        while not self._stopping.is_set():
            chunk = await fetcher.next_chunk(self.config.batch_max_seconds / 2)
            async with self._lock:
                if self._stopping.is_set():
                    return
                if self._in_flight is not None and self._in_flight.task.done():
                    await self._drain()  # raises if the write failed
                if chunk is not None:
                    self._add_pending(chunk)
                count = sum(len(v) for v in self._pending.values())
                age = time.monotonic() - self._pending_since
                while count >= self.config.batch_max_events or (
                    count and age >= self.config.batch_max_seconds
                ):
                    await self._flush()
                    count, age = sum(len(v) for v in self._pending.values()), 0.0

    def _add_pending(self, chunk: Chunk) -> None:
        """Add fetched records to the batch being gathered (none twice, see _next_offset;
        none fetched for an earlier assignment, see :mod:`streams.fetcher`)."""
        if chunk.generation != self._generation:
            return
        by_partition: dict[int, list[RawRecord]] = defaultdict(list)
        for record in chunk.records:
            by_partition[record.partition].append(record)
        for partition, records in by_partition.items():
            floor = self._next_offset.get(partition)
            if floor is None:  # not assigned (any more)
                continue
            fresh = records if records[0].offset >= floor else [
                r for r in records if r.offset >= floor]
            if not fresh:
                continue
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending[partition].extend(fresh)
            self._next_offset[partition] = fresh[-1].offset + 1

    def _take_pending(self) -> list[RawMessage]:
        """Up to ``batch_max_events`` pending messages, in partition-offset order; the rest
        (each partition's later offsets) stays pending for the next batch."""
        room = self.config.batch_max_events
        messages: list[RawMessage] = []
        for partition in sorted(self._pending):
            records = self._pending[partition]
            taken = records[:room - len(messages)]
            messages.extend(taken)
            if len(taken) == len(records):
                del self._pending[partition]
            else:
                self._pending[partition] = records[len(taken):]
        if self._pending:
            self._pending_since = time.monotonic()
        return messages

    async def _flush(self, *, wait: bool = False) -> None:
        """Prepare the pending messages as a batch and start writing it.

        Pipelined: the batch is prepared while the previous batch is still being written (the
        ClickHouse writes release the GIL), and its writes start once the previous batch's
        'done' marker is in, so batches still commit one after the other. The previous batch's
        stored identities count as seen, as they will be once its writes land. With ``wait``,
        return only when every batch in hand is committed (rebalances).
        """
        while self._pending:
            messages = self._take_pending()
            in_flight = self._in_flight
            also_seen = in_flight.batch.stored if in_flight is not None else None
            started = time.perf_counter()
            prepared = await asyncio.to_thread(self.prepare, messages, also_seen)
            self.metrics.step_seconds.labels("process").observe(time.perf_counter() - started)
            written = await self._drain()
            if in_flight is not None and written is not None and written is not in_flight.batch:
                # The batch in flight lost messages to quarantine: its stored identities,
                # which this batch was deduplicated against, changed. Decide again.
                prepared = await asyncio.to_thread(self.prepare, messages, written.stored)
            self._in_flight = _InFlight(
                asyncio.create_task(self.commit_batch(prepared, commit_kafka=True)), prepared
            )
        if wait:
            await self._drain()

    async def _drain(self) -> PreparedBatch | None:
        """Wait for the batch being written, if any, and return it as committed (see
        :meth:`commit_batch`); its failure is raised here."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return None
        return await in_flight.task

    # --- the batch -----------------------------------------------------------------------------
    def prepare(
        self,
        messages: Sequence[RawMessage],
        also_seen: Mapping[bytes, int] | None = None,
        rejected: Rejected | None = None,
        *,
        trial: bool = False,
    ) -> PreparedBatch:
        """Run the pure steps and build the wire tables (see :class:`BatchPreparer`)."""
        return self.preparer.prepare(messages, also_seen, rejected, trial=trial)

    async def commit_batch(self, batch: PreparedBatch, *, commit_kafka: bool) -> PreparedBatch:
        """Write one batch in THE commit order (:mod:`streams.committer`) and count it;
        returns it as committed (a revision, when the store refused some of its rows)."""
        fetcher = self._fetcher if commit_kafka else None
        committed = await self.committer.commit(
            batch, self._commit_offsets if fetcher is not None else None)
        self.observer.committed(committed)
        return committed

    async def _commit_offsets(self, offsets: Mapping[int, int]) -> None:
        """Step 8: Kafka offsets, for lag monitoring only (the manifest wins on restart)."""
        if self._fetcher is not None:
            self._fetcher.commit(offsets)

    async def _read_ranges(self, ranges: dict[int, tuple[int, int]]) -> list[RawMessage]:
        return await read_ranges(self.kafka_options, self.config.topic, ranges)

    # --- progress ------------------------------------------------------------------------------
    async def refresh_progress(self) -> None:
        """Lag from the broker's end offsets, and the stall gauges (see streams.progress)."""
        if self._fetcher is not None:
            await self._progress.refresh(self._fetcher)

    async def log_offsets(self) -> dict[int, tuple[int, int]]:
        """Per partition of the raw topic: the broker's (first, end) offsets."""
        if self._fetcher is None:
            return {}
        return await asyncio.to_thread(self._fetcher.log_offsets)

    # --- rebalances and recovery ---------------------------------------------------------------
    async def _revoked(self, generation: int, revoked: set[int]) -> None:
        self._generation = generation  # what was fetched before is dropped
        await self.on_revoked(revoked)

    async def _assigned(self, generation: int, assigned: set[int]) -> dict[int, int]:
        self._generation = generation
        return await self.on_assigned(assigned)

    async def on_revoked(self, revoked: set[int]) -> None:
        """Write the batch in hand before the partitions move to another worker."""
        self.metrics.rebalances.labels("revoked").inc()
        async with self._lock:
            try:
                await self._flush(wait=True)
            finally:
                for partition in revoked:
                    self._next_offset.pop(partition, None)
                    self._pending.pop(partition, None)
                self.observer.forget(revoked)

    async def on_assigned(self, assigned: set[int]) -> dict[int, int]:
        """Reload the dedup filter, finish or roll back open batches, then return where each
        partition resumes: after its last committed batch (see :mod:`streams.recovery`)."""
        self.metrics.rebalances.labels("assigned").inc()
        async with self._lock:
            await self._drain()
            await self.recovery.load_seen_filter()
            await self.recovery.replay_open_batches()
            committed = await self.recovery.resume_offsets()
            starts = {partition: committed.get(partition, 0) for partition in assigned}
            for partition, start in starts.items():
                self._next_offset[partition] = start
                self._pending.pop(partition, None)
            self.observer.assigned(starts)
        log.info("assigned %s, resuming at %s", sorted(starts), committed)
        return starts

    async def replay_open_batches(self) -> None:
        """Finish or roll back every open batch of the topic (see :mod:`streams.recovery`)."""
        await self.recovery.replay_open_batches()
