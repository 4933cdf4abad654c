"""The batch hot path: raw topic → parse → dedup → enrich → rollup → ClickHouse → commit.

An aiokafka consumer fetches in bulk (Faust hosts it as a service; its per-event streams are
far too slow for this path). Each batch is written idempotently in the order fixed by
:meth:`Pipeline.commit_batch`; the ClickHouse ``batches`` manifest, not Kafka's committed
offsets, decides where a partition resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from enrichment.catalog_index import CatalogIndex
from schemas import bounds
from sinks import ddl, wire
from sinks.store import (
    VALUE_RANGE_ERROR_CODES,
    LogPosition,
    OpenBatch,
    Store,
    StoreDataError,
    StoreError,
)
from streams.batch import DAY_MS, BatchResult, DeadLetter, PartitionTally, RawMessage, process_batch
from streams.gc_policy import TimedCollector
from streams.health import PipelineHealth
from streams.metrics import FRESHNESS_SAMPLE_EVERY, Metrics
from streams.poison import find_poison
from streams.progress import BrokerProgress
from streams.seen_filter import SeenFilter

log = logging.getLogger("meterline.pipeline")

# The dedup filter holds the identities of the window plus this margin: a batch looks back one
# window from its oldest message, so messages up to a day old (consumer lag) use the filter;
# an older backlog (a backfill) has every identity looked up in the store instead.
SEEN_FILTER_MARGIN_MS = DAY_MS

# Reason codes of messages whose rows the store refused (see Pipeline._quarantine).
VALUE_OUT_OF_RANGE = bounds.VALUE_OUT_OF_RANGE
STORAGE_REJECTED = "storage_rejected"


class PipelineStopped(RuntimeError):
    """The pipeline is stopping: the batch in hand is abandoned and replayed at next start."""


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
class PreparedBatch:
    """What writing and committing a processed batch needs, and nothing more.

    The raw messages and the Python rows are not kept: a batch waits here while the next one
    is prepared, and its Arrow wire tables hold its rows in a fraction of the memory.
    """

    batch_id: str
    tallies: dict[int, PartitionTally]  # per partition: offset range and outcome counts
    dead_letters: list[DeadLetter]
    tables: dict[str, Any]  # wire table per write step
    stored: dict[bytes, int]  # identity → seen-at ms of each stored event, as its dedup keys
    freshness_sample_ms: list[int]  # Kafka timestamps of 1 in FRESHNESS_SAMPLE_EVERY messages
    newest_event_ms: dict[int, int]  # per partition: the latest event time stored
    prepared_at_ms: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per pure step
    # (partition, offset) → (reason code, message): messages whose rows the store refused
    rejected: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is built.

    A batch allocates hundreds of thousands of small objects that all live until the batch is
    written; each automatic collection would walk all of them again (measured: a third of the
    batch's CPU time). The hot path makes no reference cycles, so reference counting frees the
    batch; the collector runs again as usual afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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


def batch_id_for(log_epoch: str, topic: str, result: BatchResult) -> str:
    """Deterministic id of a batch: a digest of its exact offset ranges."""
    ranges = ",".join(
        f"{p}:{t.from_offset}-{t.to_offset}" for p, t in sorted(result.tallies.items())
    )
    digest = hashlib.sha256(f"{log_epoch}|{topic}|{ranges}".encode()).hexdigest()[:24]
    return f"{topic}:{digest}"


def _freshness_sample(
    messages: Sequence[RawMessage], tallies: Mapping[int, PartitionTally]
) -> list[int]:
    """Kafka timestamps of one message in every ``FRESHNESS_SAMPLE_EVERY`` of each partition,
    starting with the partition's first (oldest) one. Messages are in partition-offset order,
    so the sample costs a slice per partition, not a pass over the batch."""
    sample: list[int] = []
    position = 0
    for partition in sorted(tallies):
        count = tallies[partition].consumed
        sample.extend(
            m.timestamp for m in messages[position:position + count:FRESHNESS_SAMPLE_EVERY]
        )
        position += count
    return sample


def _newest_event_ms(events: pa.Table) -> dict[int, int]:
    """The latest event time stored per partition, from the batch's ``events`` wire table."""
    if not events.num_rows:
        return {}
    newest = events.group_by("source_partition").aggregate([("timestamp_ms", "max")])
    return dict(zip(newest["source_partition"].to_pylist(),
                    newest["timestamp_ms_max"].to_pylist(), strict=True))


def _reason_of(error: StoreDataError) -> str:
    return VALUE_OUT_OF_RANGE if error.code in VALUE_RANGE_ERROR_CODES else STORAGE_REJECTED


# The batch's row writes, in commit order (steps 2-5 of Pipeline.commit_batch): wire table
# name and insert. A crash after any of them: its replayed insert is ignored (same token).
_ROW_WRITES = (
    # 2. dedup index: identities of stored events. Crash after: the replay sees its own
    #    positions there and still treats those events as originals.
    ("keys", ddl.DEDUP_KEYS_INSERT),
    # 3. enriched events.
    ("events", ddl.EVENTS_INSERT),
    # 4. pre-aggregated usage, what billing reads (one table per kind of state).
    ("rollups", ddl.ROLLUPS_INSERT),
    ("unique", ddl.UNIQUE_ROLLUPS_INSERT),
    ("values", ddl.EVENT_VALUES_INSERT),
    # 5. dead letters (the record of truth for re-drive).
    ("dead", ddl.DEAD_LETTERS_INSERT),
)


@dataclass
class _InFlight:
    """The batch being written, and the task writing it."""

    task: asyncio.Task
    batch: PreparedBatch


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.pipeline.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.pipeline.on_assigned(set(assigned))


class Pipeline:
    """The raw-topic consumer and batch writer of one worker process."""

    def __init__(
        self,
        *,
        config: PipelineConfig,
        store: Store,
        kafka_options: dict[str, Any],
        log_epoch: str,
        catalog: Callable[[], CatalogIndex],
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ):
        self.config = config
        self.store = store
        self.kafka_options = kafka_options
        self.log_epoch = log_epoch
        self.catalog = catalog
        self.clock = clock
        self.stats = PipelineStats()
        self.metrics = metrics or Metrics()
        self._gc = TimedCollector(config.gc_collect_seconds, self.metrics.gc_seconds.observe)
        self.health = PipelineHealth(stall_seconds=config.stall_seconds)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._in_flight: _InFlight | None = None
        self._pending: dict[int, list[RawMessage]] = defaultdict(list)
        self._pending_since = 0.0
        self._stopping = asyncio.Event()
        self._abort = threading.Event()  # stops store retries when the worker shuts down
        # First offset not yet in a committed batch, per assigned partition. Records below it
        # (fetched before a seek) are dropped: an offset is never processed in two batches.
        self._next_offset: dict[int, int] = {}
        self._committed_next: dict[int, int] = {}  # first offset after the last committed batch
        self._progress = BrokerProgress(
            config.topic, self.health, self.metrics, self._committed_next)
        self._watermark_ms: dict[int, int] = {}  # largest event timestamp committed
        # Identities stored so far (loaded from the store at each assignment, then added to as
        # batches are prepared): only the ones it may hold are looked up in the store. None
        # until the first assignment: then every identity is looked up.
        self._seen: SeenFilter | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect the dead-letter producer and the raw-topic consumer."""
        self._producer = AIOKafkaProducer(**self.kafka_options, acks="all")
        await self._producer.start()
        session = self.config.session_timeout_ms
        self._consumer = AIOKafkaConsumer(
            **self.kafka_options,
            group_id=self.config.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session,
            heartbeat_interval_ms=max(100, session // 3),
            rebalance_timeout_ms=max(session, 10_000),
            max_poll_interval_ms=600_000,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self._consumer.subscribe([self.config.topic], listener=_Rebalance(self))
        await self._consumer.start()
        self._gc.start()

    async def stop(self) -> None:
        """Finish the batch in hand, then close the Kafka clients."""
        self._stopping.set()
        self._abort.set()
        async with self._lock:
            self._pending.clear()  # unwritten messages are re-read from the manifest offsets
            with contextlib.suppress(PipelineStopped):  # abandoned: replayed at next start
                await self._drain()
        if self._consumer is not None:
            await self._consumer.stop()
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
        assert self._consumer is not None
        while not self._stopping.is_set():
            room = self.config.batch_max_events - sum(len(v) for v in self._pending.values())
            fetched = await self._consumer.getmany(
                timeout_ms=int(self.config.batch_max_seconds * 1000 / 2),
                max_records=max(1, room),  # a batch never holds more than batch_max_events
            )
            async with self._lock:
                if self._stopping.is_set():
                    return
                if self._in_flight is not None and self._in_flight.task.done():
                    await self._drain()  # raises if the write failed
                for tp, records in fetched.items():
                    floor = self._next_offset.get(tp.partition)
                    if floor is None:  # fetched before a revocation or assignment completed
                        continue
                    fresh = [r for r in records if r.offset >= floor]
                    if not fresh:
                        continue
                    if not self._pending:
                        self._pending_since = time.monotonic()
                    self._pending[tp.partition].extend(fresh)
                    self._next_offset[tp.partition] = fresh[-1].offset + 1
                count = sum(len(v) for v in self._pending.values())
                age = time.monotonic() - self._pending_since
                if count >= self.config.batch_max_events or (
                    count and age >= self.config.batch_max_seconds
                ):
                    await self._flush()

    async def _flush(self, *, wait: bool = False) -> None:
        """Prepare the pending messages as a batch and start writing it.

        Pipelined: the batch is prepared while the previous batch is still being written (the
        ClickHouse writes release the GIL), and its writes start once the previous batch's
        'done' marker is in, so batches still commit one after the other. The previous batch's
        stored identities count as seen, as they will be once its writes land. With ``wait``,
        return only when every batch in hand is committed (rebalances).
        """
        if self._pending:
            messages = [m for p in sorted(self._pending) for m in self._pending[p]]
            self._pending.clear()
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
        rejected: Mapping[tuple[int, int], tuple[str, str]] | None = None,
        *,
        trial: bool = False,
    ) -> PreparedBatch:
        """Run the pure steps (parse, dedup against the store, enrich, rollup, wire tables).

        ``also_seen``: identities stored by the batch still being written (see :meth:`_flush`).
        ``rejected``: (partition, offset) → (reason code, message) of messages whose rows the
        store refused (see :meth:`_quarantine`); they become dead letters. ``trial``: a run of
        the quarantine search, which leaves the dedup filter and the metrics alone.
        """
        timings: dict[str, float] = {}
        now_ms = int(self.clock() * 1000)
        seen_filter = self._seen

        def find_seen(keys: list[bytes], since: int) -> dict[bytes, list[LogPosition]]:
            # A batch of old messages (a backfill) looks further back than the filter holds:
            # then every identity is looked up.
            if seen_filter is not None and since >= seen_filter.since_ms:
                keys = seen_filter.maybe_seen(keys)
                if not trial:
                    self.metrics.dedup_lookup_keys.inc(len(keys))
                if not keys:
                    return {}
            return self._retry_sync("dedup lookup", self.store.find_seen, keys, since)

        with gc_paused():
            result = process_batch(
                messages,
                index=self.catalog(),
                log_epoch=self.log_epoch,
                find_seen=find_seen,
                dedup_window_days=self.config.dedup_window_days,
                timings=timings,
                also_seen=also_seen,
                rejected=rejected,
            )
            if seen_filter is not None and not trial:
                seen_filter.add([key for key, _ in result.stored_keys])
                self.metrics.dedup_filter_identities.set(len(seen_filter))
            bid = batch_id_for(self.log_epoch, self.config.topic, result)
            started = time.perf_counter()
            tables = {
                "keys": wire.dedup_keys_table(result.stored_keys, self.log_epoch),
                "events": wire.events_table(result.rows, result.sources, now_ms, bid),
                "rollups": wire.rollups_table(result.rollups, bid),
                "unique": wire.unique_rollups_table(result.unique_rollups, bid),
                "values": wire.event_values_table(result.event_values, bid),
                "dead": wire.dead_letters_table(result.dead_letters, now_ms, bid),
            }
            timings["wire"] = time.perf_counter() - started
            prepared = PreparedBatch(
                batch_id=bid,
                tallies=result.tallies,
                dead_letters=result.dead_letters,
                tables=tables,
                stored={key: m.timestamp for key, m in result.stored_keys},
                freshness_sample_ms=_freshness_sample(messages, result.tallies),
                newest_event_ms=_newest_event_ms(tables["events"]),
                prepared_at_ms=now_ms,
                timings=timings,
                rejected=dict(rejected or {}),
            )
        if not trial:
            for step, seconds in timings.items():
                self.metrics.step_seconds.labels(step).observe(seconds)
        return prepared

    async def commit_batch(self, batch: PreparedBatch, *, commit_kafka: bool) -> PreparedBatch:
        """Write one batch. THE commit order; every write is idempotent by its token.

        A crash anywhere replays the batch from step 1 with the same offsets, hence the same
        batch id and tokens, so a write that already landed is ignored by ClickHouse. Returns
        the batch as committed: ``batch``, or a revision of it without the messages whose rows
        the store refused (see :meth:`_quarantine`).
        """
        bid, now_ms = batch.batch_id, batch.prepared_at_ms
        topic = self.config.topic
        self.health.in_hand.update(batch.tallies)
        writes_started = time.perf_counter()
        # 1. 'begin' marker: pins the batch's exact offset ranges. Crash after this: restart
        #    finds an open batch and replays exactly these ranges (same id, same tokens).
        await self._write_marker(bid, "begin", batch.tallies, now_ms)
        # 2.-5. the batch's rows (see _write_rows). When the store refuses rows for their
        #    data, the messages behind them become dead letters and the rest is written again
        #    under fresh tokens, after what was written is deleted (see _quarantine).
        tokens = bid
        while True:
            try:
                await self._write_rows(batch, tokens)
                break
            except StoreDataError as refusal:
                revised = await self._quarantine(batch, refusal)
                if revised is not batch:  # its earlier rows are deleted: fresh tokens
                    batch, tokens = revised, f"{bid}:q{uuid.uuid4().hex[:12]}"
        # 6. dead-letter topic, for subscribers. Crash after: a replay publishes them again
        #    (the topic is at-least-once; the table is exact).
        await self._publish_dead_letters(batch.dead_letters)
        # 7. 'done' marker with the reconciliation counts: the batch is committed.
        #    Crash after: nothing is replayed; the partition resumes after this batch.
        await self._write_marker(bid, "done", batch.tallies, now_ms)
        self.metrics.step_seconds.labels("insert").observe(time.perf_counter() - writes_started)
        self._observe_committed(batch)
        self._committed_next.update({p: t.to_offset + 1 for p, t in batch.tallies.items()})
        self.health.committed(batch.tallies)
        self.health.in_hand.difference_update(batch.tallies)
        # 8. Kafka offsets, for lag monitoring only. Crash before: the manifest wins on restart.
        if commit_kafka and self._consumer is not None:
            started = time.perf_counter()
            offsets = {
                TopicPartition(topic, p): t.to_offset + 1 for p, t in batch.tallies.items()
            }
            try:
                await self._consumer.commit(offsets)
            except Exception as exc:  # a revoked partition; the manifest already holds it
                log.warning("kafka offset commit skipped: %s", exc)
            self.metrics.step_seconds.labels("commit").observe(time.perf_counter() - started)
        self._count(batch)
        return batch

    async def _write_rows(self, batch: PreparedBatch, tokens: str) -> None:
        """Steps 2-5 of :meth:`commit_batch`, each INSERT with the token ``{tokens}:{name}``."""
        for name, spec in _ROW_WRITES:
            await self._write(spec, batch.tables[name], f"{tokens}:{name}")

    async def _quarantine(self, batch: PreparedBatch, refusal: StoreDataError) -> PreparedBatch:
        """The store refused rows of ``batch`` for their data (a value it cannot hold): make
        the messages behind them dead letters and return the batch without them.

        Why it stays exact: every row the batch wrote so far is deleted first (by batch id,
        dedup keys by log position: nothing else writes them before the 'done' marker), and
        the revision is written under fresh tokens. A crash before 'done' replays the original
        batch: its writes that had landed are ignored (their tokens are known), the refused
        write is refused again, and this runs again, deleting what the interrupted revision
        wrote. When no message is to blame (nor tips the batch over), or more than half of a
        batch would go, the refusal is not a few poison messages: the batch is retried after a
        backoff, as for any store failure, and shows as a stall.
        """
        ranges = {p: (t.from_offset, t.to_offset) for p, t in batch.tallies.items()}
        messages = await self._read_ranges(ranges)
        rejected = dict(batch.rejected)

        def refusal_of(subset: Sequence[RawMessage]) -> StoreDataError | None:
            trial = self.prepare(subset, rejected=rejected, trial=True)
            for name, spec in _ROW_WRITES:
                try:
                    self.store.check_insert(spec, trial.tables[name])
                except StoreDataError as exc:
                    return exc
            return None

        candidates = [m for m in messages if (m.partition, m.offset) not in rejected]
        found = await asyncio.to_thread(
            self._retry_sync, "check rows", find_poison, candidates, refusal_of
        )
        if not found or (len(messages) >= 10 and len(found) + len(rejected) > len(messages) // 2):
            self.health.store_failed(str(refusal))
            self.metrics.store_errors.labels("insert").inc()
            log.error("the store refuses batch %s and no few messages are to blame; retrying "
                      "in %.0fs: %s", batch.batch_id, self.config.retry_max_seconds, refusal)
            if await asyncio.to_thread(self._abort.wait, self.config.retry_max_seconds):
                raise PipelineStopped("quarantine")
            return batch
        for i, exc in found.items():
            m = candidates[i]
            rejected[m.partition, m.offset] = (
                _reason_of(exc), f"the store refused its rows: {exc}"[:1000])
        log.warning("batch %s: %d message(s) refused by the store become dead letters: %s",
                    batch.batch_id, len(found), sorted(
                        (candidates[i].partition, candidates[i].offset) for i in found))
        self.metrics.quarantined.inc(len(found))
        await asyncio.to_thread(
            self._retry_sync, "delete batch rows", self.store.delete_batch_rows,
            batch.batch_id, self.log_epoch, self.config.topic, ranges,
        )
        return await asyncio.to_thread(self.prepare, messages, None, rejected)

    async def _write_marker(
        self, batch_id: str, state: str, tallies: Mapping[int, PartitionTally], now_ms: int
    ) -> None:
        """A manifest row per partition range ('begin' pins the ranges, 'done' commits)."""
        table = wire.batches_table(
            batch_id=batch_id, log_epoch=self.log_epoch, topic=self.config.topic, state=state,
            tallies=tallies, written_at_ms=now_ms,
        )
        await self._write(ddl.manifest_insert(state), table, f"{batch_id}:{state}")

    def _observe_committed(self, batch: PreparedBatch) -> None:
        """Freshness and event-time watermark of a batch whose 'done' marker is written.

        Freshness is the time from a message's Kafka timestamp to now (its rows are visible in
        the aggregates), observed for the batch's sample (see :func:`_freshness_sample`).
        """
        now = self.clock()
        observe = self.metrics.freshness.observe
        for timestamp_ms in batch.freshness_sample_ms:
            observe(max(0.0, now - timestamp_ms / 1000))
        for partition, timestamp_ms in batch.newest_event_ms.items():
            if timestamp_ms > self._watermark_ms.get(partition, -1):
                self._watermark_ms[partition] = timestamp_ms
                self.metrics.watermark.labels(self.config.topic, str(partition)).set(
                    timestamp_ms / 1000
                )

    async def refresh_progress(self) -> None:
        """Lag from the broker's end offsets, and the stall gauges (see streams.progress)."""
        if self._consumer is not None:
            await self._progress.refresh(self._consumer)

    async def log_offsets(self) -> dict[int, tuple[int, int]]:
        """Per partition of the raw topic: the broker's (first, end) offsets."""
        if self._consumer is None:
            return {}
        return await self._progress.log_offsets(self._consumer)

    def _forget_partitions(self, partitions: set[TopicPartition]) -> None:
        """Drop the per-partition gauges of partitions this worker no longer owns."""
        self.health.revoked(tp.partition for tp in partitions)
        for tp in partitions:
            self._watermark_ms.pop(tp.partition, None)
            self._committed_next.pop(tp.partition, None)
            for gauge in (self.metrics.consumer_lag, self.metrics.watermark,
                          self.metrics.seconds_since_commit):
                with contextlib.suppress(KeyError):  # never set on this worker
                    gauge.remove(tp.topic, str(tp.partition))

    def _count(self, batch: PreparedBatch) -> None:
        stats = self.stats
        stats.batches += 1
        stats.last_batch_at = self.clock()
        self.metrics.last_batch.set(stats.last_batch_at)
        messages = self.metrics.messages
        topic = self.config.topic
        for partition, tally in batch.tallies.items():
            p = str(partition)
            messages.labels(topic, p, "consumed").inc(tally.consumed)
            messages.labels(topic, p, "stored").inc(tally.stored)
            messages.labels(topic, p, "duplicate").inc(tally.duplicates)
            messages.labels(topic, p, "dead_letter").inc(tally.dead_letters)
            self.metrics.batch_size.observe(tally.consumed)
            stats.consumed += tally.consumed
            stats.stored += tally.stored
            stats.duplicates += tally.duplicates
            stats.dead_letters += tally.dead_letters
        for letter in batch.dead_letters:
            stats.by_reason[letter.code] = stats.by_reason.get(letter.code, 0) + 1
            self.metrics.dead_letters.labels(letter.code).inc()

    async def _write(self, spec: ddl.InsertSpec, table: Any, token: str) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(self._retry_sync, f"insert {spec.table}", self.store.insert,
                                spec, table, token, refusals=True)
        if table.num_rows:
            self.metrics.insert_seconds.labels(spec.table).observe(time.perf_counter() - started)
            self.metrics.insert_rows.labels(spec.table).inc(table.num_rows)

    def _retry_sync(
        self, what: str, fn: Callable, *args: Any, refusals: bool = False
    ) -> Any:
        """Retry a store call with exponential backoff until it succeeds (never drop a batch).

        ``refusals``: a :class:`StoreDataError` (the data refused, which a retry cannot fix)
        is raised to the caller instead of retried."""
        delay = self.config.retry_initial_seconds
        operation = what.split(" ")[0]
        retrying = False
        while True:
            if self._abort.is_set():
                raise PipelineStopped(what)
            if retrying:
                self.metrics.store_retries.labels(operation).inc()
            try:
                result = fn(*args)
            except StoreError as exc:
                if refusals and isinstance(exc, StoreDataError):
                    raise
                self.health.store_failed(str(exc))
                self.stats.store_retries += 1
                self.metrics.store_errors.labels(operation).inc()
                log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
                self._abort.wait(delay)
                delay = min(delay * 2, self.config.retry_max_seconds)
                retrying = True
            else:
                self.health.store_ok()
                return result

    async def _publish_dead_letters(self, dead_letters: Sequence[DeadLetter]) -> None:
        if not dead_letters or self._producer is None:
            return
        futures = [
            await self._producer.send(
                self.config.dead_letter_topic,
                value=letter.message.value or b"",
                key=f"{letter.message.partition}:{letter.message.offset}".encode(),
                headers=[
                    ("error_code", letter.code.encode()),
                    ("error_message", letter.reason.encode()[:1000]),
                    ("source_topic", letter.message.topic.encode()),
                    ("source_partition", str(letter.message.partition).encode()),
                    ("source_offset", str(letter.message.offset).encode()),
                ],
            )
            for letter in dead_letters
        ]
        await asyncio.gather(*futures)

    # --- rebalances and recovery ---------------------------------------------------------------
    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Write the batch in hand before the partitions move to another worker."""
        self.metrics.rebalances.labels("revoked").inc()
        async with self._lock:
            try:
                await self._flush(wait=True)
            finally:
                for tp in revoked:
                    self._next_offset.pop(tp.partition, None)
                self._forget_partitions(revoked)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Replay open batches of the topic, then seek each partition after its last batch."""
        assert self._consumer is not None
        self.metrics.rebalances.labels("assigned").inc()
        async with self._lock:
            await self._drain()
            await self._load_seen_filter()
            await self.replay_open_batches()
            committed = await asyncio.to_thread(
                self._retry_sync, "read offsets", self.store.committed_offsets,
                self.log_epoch, self.config.topic,
            )
            for tp in assigned:
                # no batch stored for this partition in this log epoch: read it all
                start = committed.get(tp.partition, 0)
                self._consumer.seek(tp, start)
                self._next_offset[tp.partition] = start
                self._committed_next[tp.partition] = start
                self._pending.pop(tp.partition, None)
            self.health.assigned(tp.partition for tp in assigned)
        log.info("assigned %s, resuming at %s", sorted(tp.partition for tp in assigned), committed)

    async def _load_seen_filter(self) -> None:
        """Rebuild the filter of stored identities from the store's dedup index (the window).

        Run at each assignment, once the batch in hand is written: the partitions may come
        from another worker, whose stored identities are then in the store."""
        started = time.perf_counter()
        window_ms = self.config.dedup_window_days * DAY_MS
        since_ms = int(self.clock() * 1000) - window_ms - SEEN_FILTER_MARGIN_MS

        def load() -> SeenFilter:
            seen = SeenFilter(since_ms=since_ms)
            for chunk in self.store.stored_identities(since_ms):
                seen.add_packed(chunk)
            return seen

        self._seen = await asyncio.to_thread(self._retry_sync, "read dedup keys", load)
        self.metrics.dedup_filter_identities.set(len(self._seen))
        log.info(
            "dedup filter: %d stored identities loaded in %.2fs (%d KB)", len(self._seen),
            time.perf_counter() - started, self._seen.nbytes // 1024,
        )

    async def replay_open_batches(self) -> None:
        """Finish or roll back every begun-but-unfinished batch of the topic, of any log epoch.

        A batch of this log epoch is finished: its exact ranges are re-read and committed. A
        batch of another epoch cannot be: its log is gone (the embedded broker keeps topics in
        memory, and a new cluster is a new log). What it wrote is deleted and it is recorded as
        rolled back, so a producer re-sending its events has them stored, not taken for
        duplicates; ``reconcile`` lists it.
        """
        open_batches = await asyncio.to_thread(
            self._retry_sync, "read open batches", self.store.open_batches, self.config.topic,
        )
        by_id: dict[str, list[OpenBatch]] = defaultdict(list)
        for ob in open_batches:
            by_id[ob.batch_id].append(ob)
        for bid, parts in by_id.items():
            epoch = parts[0].log_epoch
            if epoch != self.log_epoch:
                reason = f"its log (epoch {epoch}) is gone; the log is now {self.log_epoch}"
                log.error("rolling back unfinished batch %s of %d messages: %s", bid,
                          sum(p.consumed for p in parts), reason)
                await asyncio.to_thread(
                    self._retry_sync, "roll back batch", self.store.roll_back_batch,
                    self.config.topic, parts, reason,
                )
                self.metrics.rolled_back_batches.inc()
                continue
            ranges = {p.partition: (p.from_offset, p.to_offset) for p in parts}
            messages = await self._read_ranges(ranges)
            prepared = await asyncio.to_thread(self.prepare, messages)
            if prepared.batch_id != bid:
                raise RuntimeError(f"replay of {bid} read different offsets ({prepared.batch_id})")
            log.warning("replaying unfinished batch %s %s", bid, ranges)
            await self.commit_batch(prepared, commit_kafka=False)
            self.stats.replayed_batches += 1
            self.metrics.replayed_batches.inc()

    async def _read_ranges(self, ranges: dict[int, tuple[int, int]]) -> list[RawMessage]:
        reader = AIOKafkaConsumer(**self.kafka_options, enable_auto_commit=False)
        await reader.start()
        try:
            tps = {TopicPartition(self.config.topic, p): r for p, r in ranges.items()}
            reader.assign(list(tps))
            for tp, (first, _last) in tps.items():
                reader.seek(tp, first)
            got: dict[int, list[RawMessage]] = defaultdict(list)
            remaining = set(tps)
            deadline = time.monotonic() + 60
            while remaining:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot re-read offsets {ranges} of {self.config.topic}")
                fetched = await reader.getmany(*remaining, timeout_ms=500)
                for tp, records in fetched.items():
                    last = tps[tp][1]
                    got[tp.partition].extend(r for r in records if r.offset <= last)
                    if records and records[-1].offset >= last:
                        remaining.discard(tp)
            return [m for p in sorted(got) for m in got[p]]
        finally:
            await reader.stop()
