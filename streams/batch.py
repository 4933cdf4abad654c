"""One batch of raw messages through parse → dedup → enrich → rollup, with no I/O of its own.

The only outside input is ``find_seen`` (the store's dedup index), so replaying the same
messages against the same store gives the same result: that is what makes crash replays exact.

Dedup rule: an event's identity is (organization_id, external_subscription_id, transaction_id).
It is a duplicate when the identity is already stored at a log position outside this batch
within the window, or stored earlier in this batch. Stored positions inside the batch mean the
batch is being replayed after a crash: they are ignored, so the replay decides as the first run.
Only stored events enter the dedup index; a dead-lettered event can be re-driven later.

The pipeline runs :func:`decode_messages`, :func:`look_up_seen` and then the columnar engine
(``streams.columnar``), whose loop decides with the same rule (:func:`is_duplicate`) as
:func:`dedup_and_enrich` but keeps rows as columns. :func:`process_batch` is the per-event
reference the engine is held to (``tests/unit/test_columnar.py``); the bench's Faust baseline
calls the same functions, event by event.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aggregation.rollup import (
    RollupKey,
    RollupState,
    UniqueKey,
    UniqueState,
    percentage_rows,
    rollup,
    unique_rollup,
)
from enrichment.catalog_index import CatalogIndex
from enrichment.enricher import EnrichedRow, Rejection, enrich
from schemas import bounds, exact_json
from schemas.avro import MAGIC_BYTE, AvroDecodeError, decode_confluent, load_schemas
from schemas.avro_fast import parse_event_avro
from schemas.errors import InvalidField
from schemas.event import UsageEvent, parse_event
from schemas.event_json import parse_event_json
from schemas.reasons import DeadLetterReason
from sinks.store import LogPosition

# Dead-letter reason codes of the parse step (the one list: schemas.reasons.DeadLetterReason).
INVALID_JSON = DeadLetterReason.INVALID_JSON
PROCESSING_ERROR = DeadLetterReason.PROCESSING_ERROR
INVALID_AVRO = DeadLetterReason.INVALID_AVRO
INVALID_EVENT = DeadLetterReason.INVALID_EVENT
VALUE_OUT_OF_RANGE = DeadLetterReason.VALUE_OUT_OF_RANGE
EVENT_TOO_LARGE = DeadLetterReason.EVENT_TOO_LARGE
MAX_EVENT_BYTES = bounds.MAX_EVENT_BYTES

DAY_MS = 86_400_000


class RawMessage(Protocol):
    """The parts of a Kafka record the batch needs (aiokafka's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None


@dataclass(slots=True)
class RawRecord:
    """A plain :class:`RawMessage`, for messages that do not come from aiokafka (the bench's
    baseline, tests)."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # ms
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that cannot be stored, with its reason code and original bytes."""

    message: RawMessage
    code: str
    reason: str
    event: UsageEvent | None = None


@dataclass(slots=True)
class PartitionTally:
    """Per-partition outcome counts: consumed = stored + duplicates + dead_letters."""

    from_offset: int
    to_offset: int
    consumed: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    enriched_rows: int = 0


@dataclass(slots=True)
class BatchResult:
    """Everything a batch writes."""

    rows: list[EnrichedRow] = field(default_factory=list)
    stored_keys: list[tuple[bytes, RawMessage]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    rollups: dict[RollupKey, RollupState] = field(default_factory=dict)
    unique_rollups: dict[UniqueKey, UniqueState] = field(default_factory=dict)
    event_values: list[tuple[EnrichedRow, int]] = field(default_factory=list)
    tallies: dict[int, PartitionTally] = field(default_factory=dict)
    sources: list[RawMessage] = field(default_factory=list)  # the message of each row


def identity_of(event: UsageEvent) -> bytes:
    """A 16-byte digest of the event's identity (collision odds ~1e-20 at a billion keys)."""
    raw = f"{event.organization_id}\x1f{event.external_subscription_id}\x1f{event.transaction_id}"
    return hashlib.blake2b(raw.encode(), digest_size=16).digest()


def decode(message: RawMessage) -> UsageEvent | DeadLetter:
    """Parse one raw message; a message without a timestamp gets its Kafka timestamp.

    The value is JSON, or Avro in the Confluent wire format (magic byte 0 + schema id, see
    :mod:`schemas.avro`). JSON never starts with byte 0, so a value starting with it is Avro:
    one that cannot be decoded (including one shorter than the 5-byte header) is
    ``invalid_avro``; anything else that is not JSON is ``invalid_json``. The usual events
    take fast paths (:mod:`schemas.event_json`, :mod:`schemas.avro_fast`). JSON numbers are
    exact (:mod:`schemas.exact_json`). A value over ``MAX_EVENT_BYTES`` is ``event_too_large``
    before any decoding; a number or timestamp the store cannot hold is ``value_out_of_range``;
    any other invalid field is ``invalid_event``.
    """
    value = message.value or b""
    if len(value) > MAX_EVENT_BYTES:
        return DeadLetter(
            message, EVENT_TOO_LARGE, f"{len(value)} bytes, more than the {MAX_EVENT_BYTES} allowed"
        )
    if value and value[0] == MAGIC_BYTE:
        event = parse_event_avro(value, now_ms=message.timestamp)
        if event is not None:  # the usual event; anything else takes the general path
            return event
        try:
            obj = decode_confluent(value, load_schemas())
        except AvroDecodeError as exc:
            return DeadLetter(message, INVALID_AVRO, f"not Avro: {exc}")
    else:
        event = parse_event_json(value, now_ms=message.timestamp)
        if event is not None:  # the usual event; anything else takes the general path
            return event
        try:
            obj = exact_json.loads(value)
        except exact_json.JSONDecodeError as exc:
            return DeadLetter(message, INVALID_JSON, f"not JSON: {exc}")
    try:
        return parse_event(obj, now_ms=message.timestamp)
    except InvalidField as exc:
        code = VALUE_OUT_OF_RANGE if exc.code == bounds.VALUE_IS_OUT_OF_RANGE else INVALID_EVENT
        return DeadLetter(message, code, f"{exc.field}: {exc.code}: {exc}")


def process_batch(
    messages: Sequence[RawMessage],
    *,
    index: CatalogIndex,
    log_epoch: str,
    find_seen: Callable[[list[bytes], int], dict[bytes, list[LogPosition]]],
    dedup_window_days: int,
    timings: dict[str, float] | None = None,
    also_seen: Mapping[bytes, int] | None = None,
    rejected: Mapping[tuple[int, int], tuple[str, str]] | None = None,
) -> BatchResult:
    """Run the pure steps over ``messages`` (in partition-offset order): decode, dedup, enrich,
    roll up.

    ``also_seen``: identity → seen-at time (ms) of the events stored by an earlier batch whose
    writes may not be visible in the store yet (the pipeline prepares a batch while the
    previous one is written). They count exactly as the store's dedup keys will once that
    batch lands: duplicates when seen within the window.

    ``rejected``: (partition, offset) → (reason code, message) of messages the store refused
    (see ``streams.committer``): they become dead letters whatever they hold.

    ``timings``, when given, receives the seconds spent per step: ``parse``, ``dedup`` (the
    dedup index lookup), ``enrich`` (the per-event duplicate check and enrichment) and
    ``rollup``.
    """
    started = time.perf_counter()
    result = BatchResult()
    decoded = decode_messages(messages, result, rejected)
    parsed_at = time.perf_counter()
    lookup = look_up_seen(decoded, result, log_epoch=log_epoch, find_seen=find_seen,
                          dedup_window_days=dedup_window_days, also_seen=also_seen)
    deduped_at = time.perf_counter()
    dedup_and_enrich(
        decoded.events, lookup.seen, lookup.stored_here, lookup.inside, index, result)
    enriched_at = time.perf_counter()
    roll_up(result)
    if timings is not None:
        timings["parse"] = parsed_at - started
        timings["dedup"] = deduped_at - parsed_at
        timings["enrich"] = enriched_at - deduped_at
        timings["rollup"] = time.perf_counter() - enriched_at
    return result


@dataclass(slots=True)
class Decoded:
    """The events of a batch that decoded, with their messages and identities."""

    events: list[tuple[RawMessage, UsageEvent, bytes]] = field(default_factory=list)
    earliest_ms: int | None = None  # the oldest Kafka timestamp among them
    topics: set[str] = field(default_factory=set)


def decode_messages(
    messages: Sequence[RawMessage], result: BatchResult,
    rejected: Mapping[tuple[int, int], tuple[str, str]] | None = None,
) -> Decoded:
    """Step 1: decode every message; tally each partition's offset range and dead letters
    (in ``result``). A message that cannot be decoded (or that ``rejected`` names) is a dead
    letter; nothing raises."""
    decoded = Decoded()
    events = decoded.events
    tallies = result.tallies
    tally = PartitionTally(0, 0)
    partition = None
    for message in messages:
        if message.partition != partition:  # messages come grouped by partition
            partition = message.partition
            decoded.topics.add(message.topic)
            known = tallies.get(partition)
            if known is None:
                known = tallies[partition] = PartitionTally(message.offset, message.offset)
            tally = known
        offset = message.offset
        if offset > tally.to_offset:
            tally.to_offset = offset
        elif offset < tally.from_offset:
            tally.from_offset = offset
        tally.consumed += 1
        try:
            parsed = decode(message)
        except Exception as exc:  # a poison message: reject it, never block the partition
            parsed = DeadLetter(message, PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
        if rejected and (partition, offset) in rejected:
            parsed = DeadLetter(message, *rejected[partition, offset],
                                None if isinstance(parsed, DeadLetter) else parsed)
        if isinstance(parsed, DeadLetter):
            result.dead_letters.append(parsed)
            tally.dead_letters += 1
        else:
            events.append((message, parsed, identity_of(parsed)))
            if decoded.earliest_ms is None or message.timestamp < decoded.earliest_ms:
                decoded.earliest_ms = message.timestamp
    return decoded


@dataclass(frozen=True, slots=True)
class SeenLookup:
    """What the dedup rule (:func:`is_duplicate`) needs to decide the events of one batch."""

    seen: Mapping[bytes, list[LogPosition]]  # stored positions of the batch's identities
    stored_here: set[bytes]  # identities stored by the batch in flight, then by this one
    inside: Callable[[LogPosition], bool]  # whether a stored position is this batch's own


def look_up_seen(
    decoded: Decoded,
    result: BatchResult,
    *,
    log_epoch: str,
    find_seen: Callable[[list[bytes], int], dict[bytes, list[LogPosition]]],
    dedup_window_days: int,
    also_seen: Mapping[bytes, int] | None,
) -> SeenLookup:
    """Step 2: the dedup index lookup of a decoded batch (its identities, once each, within
    the window before its oldest message), and the identities of ``also_seen`` in it."""
    since = (decoded.earliest_ms or 0) - dedup_window_days * DAY_MS
    identities = list({ident for _, _, ident in decoded.events})
    seen = find_seen(identities, since) if identities else {}
    return SeenLookup(seen, _stored_within(also_seen, since),
                      _inside_batch(result.tallies, log_epoch, decoded.topics))


def _stored_within(also_seen: Mapping[bytes, int] | None, since: int) -> set[bytes]:
    """The identities of ``also_seen`` stored at or after ``since`` (the dedup window)."""
    if not also_seen:
        return set()
    if min(also_seen.values()) >= since:  # the usual case: all of them are in the window
        return set(also_seen)
    return {k for k, seen_at in also_seen.items() if seen_at >= since}


def _inside_batch(
    tallies: Mapping[int, PartitionTally], log_epoch: str, topics: set[str]
) -> Callable[[LogPosition], bool]:
    """Whether a stored position lies inside this batch's own offset ranges.

    Positions inside this batch are ignored: on a replay they are this batch's own earlier
    writes, and duplicates within the batch are decided by the batch alone. A batch holds every
    message of its offset range on each partition (batches are consecutive ranges, pinned by
    the manifest), so "inside" is a range test, not a set of positions."""

    def inside(position: LogPosition) -> bool:
        tally = tallies.get(position.partition)
        return (
            tally is not None and tally.from_offset <= position.offset <= tally.to_offset
            and position.log_epoch == log_epoch and position.topic in topics
        )

    return inside


def is_duplicate(
    ident: bytes, seen: Mapping[bytes, list[LogPosition]], stored_here: set[bytes],
    inside: Callable[[LogPosition], bool],
) -> bool:
    """The dedup rule (module doc) for one decoded event, in log order: its identity was
    stored earlier in this batch (``stored_here``), or is stored at a position outside it."""
    if ident in stored_here:
        return True
    positions = seen.get(ident) if seen else None
    return positions is not None and any(not inside(p) for p in positions)


def dedup_and_enrich(
    events: list[tuple[RawMessage, UsageEvent, bytes]],
    seen: Mapping[bytes, list[LogPosition]],
    stored_here: set[bytes],
    inside: Callable[[LogPosition], bool],
    index: CatalogIndex,
    result: BatchResult,
) -> None:
    """Steps 2-3: each decoded event, in log order, is a duplicate (its identity stored at a
    position outside this batch, or earlier in it: ``stored_here``, updated), a dead letter
    (enrichment rejects it), or stored: its enriched rows and dedup key go to ``result``."""
    tallies, rows, sources = result.tallies, result.rows, result.sources
    for message, event, ident in events:
        tally = tallies[message.partition]
        if is_duplicate(ident, seen, stored_here, inside):
            tally.duplicates += 1
            continue
        try:
            outcome = enrich(event, index)
        except Exception as exc:  # a poison message: reject it, never block the partition
            outcome = Rejection(PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
        if isinstance(outcome, Rejection):
            result.dead_letters.append(DeadLetter(message, outcome.code, outcome.message, event))
            tally.dead_letters += 1
            continue
        stored_here.add(ident)
        tally.stored += 1
        tally.enriched_rows += len(outcome)
        rows.extend(outcome)
        if len(outcome) == 1:
            sources.append(message)
        else:
            sources.extend([message] * len(outcome))
        result.stored_keys.append((ident, message))


def roll_up(result: BatchResult) -> None:
    """Step 4: the batch's stored rows as pre-aggregated states (``aggregation.rollup``)."""
    offsets = [m.offset for m in result.sources]
    result.rollups = rollup(result.rows, offsets)
    result.unique_rollups = unique_rollup(result.rows, offsets)
    result.event_values = percentage_rows(result.rows, offsets)
