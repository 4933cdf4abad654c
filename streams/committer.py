"""THE commit protocol: how one prepared batch becomes durable, exactly once.

A batch is written in this order (:meth:`Committer.commit`):

1. a 'begin' marker in ``batch_begins``, which pins the batch's exact offset ranges;
2. its dedup keys;
3. its enriched events;
4. its roll-ups (usage states, unique-value states, percentage event values);
5. its dead letters;
6. its dead letters on the dead-letter topic;
7. a 'done' marker in ``batches``, with the reconciliation counts: the batch is committed;
8. the Kafka offsets (for lag monitoring only).

Why a crash anywhere loses and doubles nothing: every INSERT carries a token derived from the
batch's offset ranges (``{batch_id}:{step}``), and ClickHouse ignores an INSERT whose token it
has seen. A crash before step 7 leaves an open batch (a 'begin' without a 'done'); at the next
assignment it is re-read from exactly those offsets, prepared again into the same rows with the
same batch id, and written again: what had landed is ignored, the rest lands (see
``streams.recovery``). The dedup decisions of the replay are the same, because positions
inside the batch's own ranges are ignored by the dedup check (``streams.batch``). A crash after
step 7 replays nothing: the partition resumes after the batch, from the manifest, whatever
Kafka's committed offset says. The dead-letter topic (step 6) is at least once; the table
(step 5) is exact.

A write the store refuses for its data (a value it cannot hold, ``StoreDataError``) is the
one exception to "retry until it lands": :func:`quarantine` finds the messages behind the
refusal, makes them dead letters, deletes what the batch had written and writes the rest under
fresh tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaProducer

from schemas.reasons import DeadLetterReason
from sinks.batch_tables import BATCH_PARTS, table_of
from sinks.store import VALUE_RANGE_ERROR_CODES, BatchStore, StoreDataError
from streams.batch import DeadLetter, PartitionTally, RawMessage
from streams.health import PipelineHealth
from streams.metrics import Metrics
from streams.poison import find_poison
from streams.prepare import PreparedBatch, Rejected
from streams.retry import PipelineStopped, StoreRetry

log = logging.getLogger("meterline.pipeline")

# Reason codes of messages whose rows the store refused (see quarantine).
VALUE_OUT_OF_RANGE = DeadLetterReason.VALUE_OUT_OF_RANGE
STORAGE_REJECTED = DeadLetterReason.STORAGE_REJECTED

# Steps 2-5 are the batch's parts (sinks.batch_tables.BATCH_PARTS), in this order:
# 2. dedup keys (identities of stored events). Crash after: the replay sees its own positions
#    there and still treats those events as originals.
# 3. enriched events; 4. roll-ups (usage states, unique-value states, percentage values: what
#    billing reads); 5. dead letters (the record of truth for re-drive).
# A crash after any of them: its replayed insert is ignored (same token).
ROW_WRITES = BATCH_PARTS

Prepare = Callable[..., PreparedBatch]
ReadRanges = Callable[[dict[int, tuple[int, int]]], Awaitable[list[RawMessage]]]
CommitOffsets = Callable[[Mapping[int, int]], Awaitable[None]]


class Committer:
    """Writes prepared batches of one topic and log epoch in THE order (module doc)."""

    def __init__(
        self, *, topic: str, dead_letter_topic: str, log_epoch: str, store: BatchStore,
        retry: StoreRetry, metrics: Metrics, health: PipelineHealth,
        producer: Callable[[], AIOKafkaProducer | None], prepare: Prepare,
        read_ranges: ReadRanges,
    ):
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.log_epoch = log_epoch
        self.store = store
        self.retry = retry
        self.metrics = metrics
        self.health = health
        self.producer = producer
        self.prepare = prepare
        self.read_ranges = read_ranges

    async def commit(
        self, batch: PreparedBatch, commit_offsets: CommitOffsets | None = None
    ) -> PreparedBatch:
        """Write ``batch`` (steps 1-8 of the module doc) and return it as committed: ``batch``,
        or a revision without the messages whose rows the store refused."""
        bid, now_ms = batch.batch_id, batch.prepared_at_ms
        self.health.in_hand.update(batch.tallies)
        started = time.perf_counter()
        await self.write_marker(bid, "begin", batch.tallies, now_ms)  # 1
        tokens = bid
        while True:  # 2-5
            try:
                await self.write_rows(batch, tokens)
                break
            except StoreDataError as refusal:
                revised = await quarantine(self, batch, refusal)
                if revised is not batch:  # its earlier rows are deleted: fresh tokens
                    batch, tokens = revised, f"{bid}:q{uuid.uuid4().hex[:12]}"
        await self.publish_dead_letters(batch.dead_letters)  # 6
        await self.write_marker(bid, "done", batch.tallies, now_ms)  # 7
        self.metrics.step_seconds.labels("insert").observe(time.perf_counter() - started)
        self.health.in_hand.difference_update(batch.tallies)
        if commit_offsets is not None:  # 8
            started = time.perf_counter()
            await commit_offsets({p: t.to_offset + 1 for p, t in batch.tallies.items()})
            self.metrics.step_seconds.labels("commit").observe(time.perf_counter() - started)
        return batch

    async def write_rows(self, batch: PreparedBatch, tokens: str) -> None:
        """Steps 2-5, each INSERT with the token ``{tokens}:{part}``; a refusal of the data is
        raised, anything else retried until it lands."""
        for part in ROW_WRITES:
            table = table_of(part)
            started = time.perf_counter()
            await asyncio.to_thread(self.retry, f"insert {table}", self.store.write_part,
                                    batch.encoded, part, f"{tokens}:{part}", refusals=True)
            rows = batch.encoded.rows(part)
            if rows:
                self.metrics.insert_seconds.labels(table).observe(time.perf_counter() - started)
                self.metrics.insert_rows.labels(table).inc(rows)

    async def write_marker(
        self, batch_id: str, state: str, tallies: Mapping[int, PartitionTally], now_ms: int
    ) -> None:
        """A manifest row per partition range ('begin' pins the ranges, 'done' commits)."""
        table = "batch_begins" if state == "begin" else "batches"
        started = time.perf_counter()
        await asyncio.to_thread(
            self.retry, f"insert {table}", self.store.write_marker,
            batch_id, self.log_epoch, self.topic, state, tallies, now_ms,
        )
        self.metrics.insert_seconds.labels(table).observe(time.perf_counter() - started)
        self.metrics.insert_rows.labels(table).inc(len(tallies))

    async def publish_dead_letters(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Step 6: the letters on the dead-letter topic, with their reason in headers."""
        producer = self.producer()
        if not dead_letters or producer is None:
            return
        futures = [
            await producer.send(
                self.dead_letter_topic,
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


def reason_of(error: StoreDataError) -> str:
    """The dead-letter reason of a message whose rows the store refused."""
    return VALUE_OUT_OF_RANGE if error.code in VALUE_RANGE_ERROR_CODES else STORAGE_REJECTED


async def quarantine(
    committer: Committer, batch: PreparedBatch, refusal: StoreDataError
) -> PreparedBatch:
    """The store refused rows of ``batch`` for their data (a value it cannot hold): make the
    messages behind them dead letters and return the batch without them.

    Why it stays exact: every row the batch wrote so far is deleted first (by batch id, dedup
    keys by log position: nothing else writes them before the 'done' marker), and the revision
    is written under fresh tokens. A crash before 'done' replays the original batch: its writes
    that had landed are ignored (their tokens are known), the refused write is refused again,
    and this runs again, deleting what the interrupted revision wrote. When no message is to
    blame (nor tips the batch over), or more than half of a batch would go, the refusal is not
    a few poison messages: the batch is retried after a backoff, as for any store failure, and
    shows as a stall.
    """
    ranges = {p: (t.from_offset, t.to_offset) for p, t in batch.tallies.items()}
    messages = await committer.read_ranges(ranges)
    rejected = dict(batch.rejected)
    candidates = [m for m in messages if (m.partition, m.offset) not in rejected]
    found = await asyncio.to_thread(
        committer.retry, "check rows", find_poison, candidates,
        lambda subset: _refusal_of(committer, subset, rejected),
    )
    if not found or (len(messages) >= 10 and len(found) + len(rejected) > len(messages) // 2):
        return await _back_off(committer, batch, refusal)
    for i, exc in found.items():
        m = candidates[i]
        rejected[m.partition, m.offset] = (
            reason_of(exc), f"the store refused its rows: {exc}"[:1000])
    log.warning("batch %s: %d message(s) refused by the store become dead letters: %s",
                batch.batch_id, len(found),
                sorted((candidates[i].partition, candidates[i].offset) for i in found))
    committer.metrics.quarantined.inc(len(found))
    await asyncio.to_thread(
        committer.retry, "delete batch rows", committer.store.delete_batch_rows,
        batch.batch_id, committer.log_epoch, committer.topic, ranges,
    )
    return await asyncio.to_thread(committer.prepare, messages, None, rejected)


def _refusal_of(
    committer: Committer, subset: Sequence[RawMessage], rejected: Rejected
) -> StoreDataError | None:
    """The store's refusal of the rows of ``subset``, by dry-run INSERTs (nothing written)."""
    trial = committer.prepare(subset, rejected=rejected, trial=True)
    for part in ROW_WRITES:
        try:
            committer.store.check_part(trial.encoded, part)
        except StoreDataError as exc:
            return exc
    return None


async def _back_off(
    committer: Committer, batch: PreparedBatch, refusal: StoreDataError
) -> PreparedBatch:
    """A refusal no few messages explain: count it as a store failure, wait, retry as is."""
    committer.health.store_failed(str(refusal))
    committer.metrics.store_errors.labels("insert").inc()
    wait = committer.retry.max_seconds
    log.error("the store refuses batch %s and no few messages are to blame; retrying in "
              "%.0fs: %s", batch.batch_id, wait, refusal)
    if await asyncio.to_thread(committer.retry.abort.wait, wait):
        raise PipelineStopped("quarantine")
    return batch
