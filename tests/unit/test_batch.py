"""process_batch (SPEC §4): parse → dedup → enrich → rollup, with a dict-backed find_seen."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from enrichment.catalog_index import CatalogIndex
from sinks.store import LogPosition
from streams.batch import BatchResult, PartitionTally, RawRecord, identity_of, process_batch
from tests.unit.catalog_factory import (
    DAY_MS,
    HOUR_MS,
    ORG,
    START_MS,
    event,
    index,
    subscription,
)

EPOCH = "epoch_1"
TOPIC = "events-raw"
KAFKA_TS = START_MS + 2 * HOUR_MS  # the broker's message timestamp
EVENT_TS_S = (START_MS + HOUR_MS) // 1000  # 1_735_693_200: the payload's Unix seconds


class FakeSeen:
    """The store's dedup index as a dict identity → positions; records every call."""

    def __init__(self, stored: dict[bytes, list[LogPosition]] | None = None):
        self.stored = stored or {}
        self.calls: list[tuple[list[bytes], int]] = []

    def __call__(self, identities: list[bytes], since_ms: int) -> dict[bytes, list[LogPosition]]:
        self.calls.append((identities, since_ms))
        return {i: self.stored[i] for i in identities if i in self.stored}


def payload(tx: str = "tx_1", amount: Any = 1, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "organization_id": ORG,
        "external_subscription_id": "sub_ext_1",
        "code": "api",
        "transaction_id": tx,
        "timestamp": EVENT_TS_S,
        "properties": {"amount": amount},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def msg(
    offset: int, body: dict[str, Any] | bytes | None, *, partition: int = 0, ts: int = KAFKA_TS
) -> RawRecord:
    value = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
    return RawRecord(TOPIC, partition, offset, ts, value)


def pos(offset: int, partition: int = 0, epoch: str = EPOCH) -> LogPosition:
    return LogPosition(epoch, TOPIC, partition, offset)


def ident(tx: str, external_id: str = "sub_ext_1") -> bytes:
    return identity_of(event(tx=tx, external_id=external_id))


def run(
    messages: list[RawRecord],
    seen: FakeSeen | None = None,
    idx: CatalogIndex | None = None,
    window_days: int = 35,
) -> BatchResult:
    return process_batch(
        messages,
        index=idx or index(subscriptions=[subscription(), subscription("s_2", external_id="b")]),
        log_epoch=EPOCH,
        find_seen=seen if seen is not None else FakeSeen(),
        dedup_window_days=window_days,
    )


def outcomes(result: BatchResult, messages: list[RawRecord]) -> list[str]:
    """Per message: "stored", "duplicate" or the dead-letter code."""
    stored = {id(m) for _, m in result.stored_keys}
    dead = {id(d.message): d.code for d in result.dead_letters}
    return [
        "stored" if id(m) in stored else dead.get(id(m), "duplicate") for m in messages
    ]


# ------------------------------------------------------------------------------------------------
# outcome of each message


@pytest.mark.parametrize(
    ("bodies", "stored", "expected"),
    [
        pytest.param([b"{not json"], {}, ["invalid_json"], id="invalid-json"),
        pytest.param([None], {}, ["invalid_json"], id="tombstone-no-value"),
        pytest.param([b"[1, 2]"], {}, ["invalid_event"], id="json-not-an-object"),
        pytest.param(
            [payload(transaction_id=None)], {}, ["invalid_event"], id="missing-transaction_id"
        ),
        pytest.param([payload("a"), payload("b")], {}, ["stored", "stored"], id="two-distinct"),
        pytest.param(
            [payload("a"), payload("a")], {}, ["stored", "duplicate"], id="duplicate-in-batch"
        ),
        pytest.param(
            [payload("a", 1), payload("a", 5, timestamp=EVENT_TS_S + 60)],
            {},
            ["stored", "duplicate"],
            id="retry-with-new-timestamp-is-duplicate",
        ),
        pytest.param(
            [payload("a")], {"a": [pos(3)]}, ["duplicate"], id="stored-at-another-offset"
        ),
        pytest.param(
            [payload("a")], {"a": [pos(0, partition=1)]}, ["duplicate"],
            id="stored-at-same-offset-other-partition",
        ),
        pytest.param(
            [payload("a")], {"a": [pos(0, epoch="epoch_0")]}, ["duplicate"],
            id="stored-at-same-offset-previous-log-epoch",
        ),
        pytest.param(
            [payload("a")], {"a": [pos(0)]}, ["stored"], id="stored-at-own-position-replay"
        ),
        pytest.param(
            [payload("a"), payload("a")], {"a": [pos(0)]}, ["stored", "duplicate"],
            id="replay-with-in-batch-duplicate",
        ),
        pytest.param(
            [payload("a", code="nope"), payload("a")],
            {},
            ["unknown_metric", "stored"],
            id="dead-lettered-first-copy-then-valid",
        ),
        pytest.param(
            [payload("a", amount="x"), payload("a", amount=2)],
            {},
            ["invalid_value", "stored"],
            id="invalid-value-first-copy-then-valid",
        ),
        pytest.param(
            [payload("a", external_subscription_id="nobody"), payload("a")],
            {},
            ["no_subscription", "stored"],
            id="no-subscription-does-not-enter-dedup",
        ),
        pytest.param(
            [payload("a"), payload("a", external_subscription_id="b")],
            {},
            ["stored", "stored"],
            id="same-transaction-two-subscriptions",
        ),
        pytest.param(
            [payload("a"), payload("a", code="nope")],
            {},
            ["stored", "duplicate"],
            id="identity-ignores-code",
        ),
    ],
)
def test_message_outcomes(
    bodies: list[Any], stored: dict[str, list[LogPosition]], expected: list[str]
) -> None:
    messages = [msg(offset, body) for offset, body in enumerate(bodies)]
    result = run(messages, FakeSeen({ident(tx): ps for tx, ps in stored.items()}))
    assert outcomes(result, messages) == expected
    (tally,) = result.tallies.values()
    assert (tally.stored, tally.duplicates, tally.dead_letters) == (
        expected.count("stored"),
        expected.count("duplicate"),
        len(expected) - expected.count("stored") - expected.count("duplicate"),
    )


def test_replay_after_crash_gives_the_original_outcomes() -> None:
    messages = [msg(0, payload("a", code="nope")), msg(1, payload("a"))]
    first = run(messages)
    assert outcomes(first, messages) == ["unknown_metric", "stored"]
    # crash after the dedup keys were written: the store now holds "a" at offset 1
    replay = run(messages, FakeSeen({ident_: [pos(m.offset)] for ident_, m in first.stored_keys}))
    assert outcomes(replay, messages) == ["unknown_metric", "stored"]
    assert replay.tallies == first.tallies


def test_invalid_event_reason_names_the_field() -> None:
    messages = [msg(0, payload(transaction_id=None))]
    (letter,) = run(messages).dead_letters
    assert (letter.code, letter.event, letter.message) == ("invalid_event", None, messages[0])
    assert letter.reason.startswith("transaction_id: value_is_mandatory")


def test_enrichment_dead_letter_keeps_the_event() -> None:
    (letter,) = run([msg(0, payload(code="nope"))]).dead_letters
    assert letter.code == "unknown_metric"
    assert letter.event is not None and letter.event.code == "nope"


@pytest.mark.parametrize(
    ("timestamp", "expected_ms"),
    [
        pytest.param(None, KAFKA_TS + 123, id="missing-uses-kafka-timestamp"),
        pytest.param(EVENT_TS_S, START_MS + HOUR_MS, id="unix-seconds"),
        pytest.param("2025-01-01T01:00:00.5Z", START_MS + HOUR_MS + 500, id="rfc3339"),
    ],
)
def test_event_timestamp(timestamp: Any, expected_ms: int) -> None:
    body = payload()
    body.pop("timestamp")
    if timestamp is not None:
        body["timestamp"] = timestamp
    (row,) = run([msg(0, body, ts=KAFKA_TS + 123)]).rows
    assert row.event.timestamp_ms == expected_ms


# ------------------------------------------------------------------------------------------------
# the dedup lookup


@pytest.mark.parametrize(
    ("kafka_ts", "window_days", "expected_since"),
    [
        pytest.param([KAFKA_TS], 35, KAFKA_TS - 35 * DAY_MS, id="one-message-default-window"),
        pytest.param(
            [KAFKA_TS + 5000, KAFKA_TS + 1000, KAFKA_TS + 3000],
            35,
            KAFKA_TS + 1000 - 3_024_000_000,  # 35 days = 3_024_000_000 ms
            id="min-of-message-timestamps",
        ),
        pytest.param([KAFKA_TS, KAFKA_TS + 1], 1, KAFKA_TS - 86_400_000, id="one-day-window"),
        pytest.param([KAFKA_TS], 0, KAFKA_TS, id="zero-window"),
    ],
)
def test_find_seen_since(kafka_ts: list[int], window_days: int, expected_since: int) -> None:
    seen = FakeSeen()
    messages = [msg(i, payload(f"t{i}"), ts=ts) for i, ts in enumerate(kafka_ts)]
    run(messages, seen, window_days=window_days)
    ((identities, since),) = seen.calls
    assert since == expected_since
    assert sorted(identities) == sorted(ident(f"t{i}") for i in range(len(kafka_ts)))


def test_find_seen_gets_each_identity_once_and_is_skipped_without_events() -> None:
    seen = FakeSeen()
    run([msg(0, payload("a")), msg(1, payload("a")), msg(2, b"x")], seen)
    assert [ids for ids, _ in seen.calls] == [[ident("a")]]
    seen = FakeSeen()
    run([msg(0, b"x"), msg(1, payload(code=None))], seen)
    assert seen.calls == []


# ------------------------------------------------------------------------------------------------
# per-partition reconciliation


def test_partition_tallies_reconcile() -> None:
    messages = [
        msg(10, payload("a"), partition=0),
        msg(11, payload("a"), partition=0),  # duplicate in batch
        msg(12, b"{", partition=0),  # invalid_json
        msg(13, payload("b"), partition=0),  # stored
        msg(40, payload("c"), partition=1),  # duplicate of the store
        msg(41, payload("d", code="nope"), partition=1),  # unknown_metric
        msg(42, payload("e", external_subscription_id="b"), partition=1),  # stored
        msg(7, payload("f"), partition=2),  # stored
    ]
    result = run(messages, FakeSeen({ident("c"): [pos(5, partition=1)]}))
    assert result.tallies == {
        0: PartitionTally(from_offset=10, to_offset=13, consumed=4, stored=2, duplicates=1,
                          dead_letters=1, enriched_rows=2),
        1: PartitionTally(from_offset=40, to_offset=42, consumed=3, stored=1, duplicates=1,
                          dead_letters=1, enriched_rows=1),
        2: PartitionTally(from_offset=7, to_offset=7, consumed=1, stored=1, duplicates=0,
                          dead_letters=0, enriched_rows=1),
    }
    for t in result.tallies.values():
        assert t.consumed == t.stored + t.duplicates + t.dead_letters
    assert len(result.dead_letters) == 2
    assert [m.offset for _, m in result.stored_keys] == [10, 13, 42, 7]
    assert [m.offset for m in result.sources] == [10, 13, 42, 7]


# ------------------------------------------------------------------------------------------------
# rollups


@pytest.mark.parametrize(
    ("amounts", "expected_sum", "expected_max"),
    [
        pytest.param([0.1, 0.2], Decimal("0.3"), Decimal("0.2"), id="float-0.1+0.2"),
        pytest.param(["0.1", "0.2", "0.3"], Decimal("0.6"), Decimal("0.3"), id="strings"),
        pytest.param(["1.10", 2, -0.1], Decimal("3.0"), Decimal(2), id="mixed-with-negative"),
        pytest.param(
            ["0.000000000001", "99999999999999.999999999999"],
            Decimal("100000000000000"),
            Decimal("99999999999999.999999999999"),
            id="decimal-38-12-extremes",
        ),
        pytest.param([1e6, "1e6"], Decimal(2000000), Decimal(1000000), id="1e6"),
    ],
)
def test_rollup_sums_exactly(
    amounts: list[Any], expected_sum: Decimal, expected_max: Decimal
) -> None:
    messages = [msg(i, payload(f"t{i}", a)) for i, a in enumerate(amounts)]
    messages.append(msg(len(amounts), payload("t0", 1000)))  # a duplicate: not aggregated
    result = run(messages)
    ((key, state),) = result.rollups.items()
    bucket = START_MS + HOUR_MS  # events at 01:00:00, a 15-minute boundary
    assert (key.subscription_id, key.charge_id, key.bucket_start_ms) == ("s_1", "ch_1", bucket)
    assert (state.events_count, state.value_sum, state.value_max) == (
        len(amounts), expected_sum, expected_max
    )


def raw_event(tx: str, amount: bytes, *extra: bytes) -> bytes:
    """An event whose ``amount`` property is the JSON number text ``amount``, verbatim."""
    return (b'{"organization_id":"' + ORG.encode() + b'","external_subscription_id":"sub_ext_1",'
            b'"code":"api","transaction_id":"' + tx.encode() + b'","timestamp":'
            + str(EVENT_TS_S).encode() + b',"properties":{"amount":' + amount + b"}"
            + b"".join(extra) + b"}")


def test_raw_topic_numbers_are_exact_to_the_stored_value() -> None:
    """Issue 16 finding 5: orjson made 12345678.123456789012 a float (…12345679) and 2**70
    a float (1.1805916207174113e+21); the stored values and sums keep every digit now."""
    messages = [
        msg(0, raw_event("a", b"12345678.123456789012")),
        msg(1, raw_event("b", b"1180591620717411303424")),
        msg(2, raw_event("c", b"0.1")),
    ]
    result = run(messages)
    assert outcomes(result, messages) == ["stored"] * 3
    assert [r.decimal_value for r in result.rows] == [
        Decimal("12345678.123456789012"), Decimal(2**70), Decimal("0.1")
    ]
    assert [r.value for r in result.rows] == [
        "12345678.123456789012", "1180591620717411303424", "0.1"
    ]
    ((_, state),) = result.rollups.items()
    assert state.value_sum == Decimal("1180591620717423649102.223456789012")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(raw_event("a", b"1e26"), "value_out_of_range", id="value-1e26"),
        pytest.param(raw_event("a", b"-1e400"), "value_out_of_range", id="value-1e400"),
        pytest.param(raw_event("a", b"100000000000000000000000000"), "value_out_of_range",
                     id="value-10**26-integer"),
        pytest.param(raw_event("a", b"1", b',"precise_total_amount_cents":"1e400"'),
                     "value_out_of_range", id="amount-1e400"),
        pytest.param(raw_event("a", b"1", b',"precise_total_amount_cents":1e26'),
                     "value_out_of_range", id="amount-1e26-number"),
        pytest.param(payload(timestamp=4_102_444_800), "value_out_of_range", id="ts-2100"),
        pytest.param(payload(timestamp="1969-12-31T23:59:59Z"), "value_out_of_range",
                     id="ts-1969"),
        pytest.param(payload(external_subscription_id="s" * 257), "invalid_event",
                     id="subscription-id-too-long"),
        pytest.param(payload(code="c" * 257), "invalid_event", id="code-too-long"),
        pytest.param(payload(organization_id="o" * 257), "invalid_event", id="org-too-long"),
        pytest.param(payload(pad="x" * 262_144), "event_too_large", id="over-max-event-bytes"),
        pytest.param(raw_event("a", b"99999999999999999999999999.999999999999"), "stored",
                     id="largest-value-stored"),
    ],
)
def test_what_the_store_cannot_hold_is_dead_lettered_with_its_reason(
    body: dict[str, Any] | bytes, expected: str
) -> None:
    messages = [msg(0, body), msg(1, payload("fine"))]
    result = run(messages)
    assert outcomes(result, messages) == [expected, "stored"]
    (tally,) = result.tallies.values()
    assert tally.consumed == tally.stored + tally.duplicates + tally.dead_letters == 2


def test_a_message_that_breaks_enrichment_is_dead_lettered_not_raised(monkeypatch):
    import streams.batch as batch_module

    def explode(event, index):
        if event.transaction_id == "poison":
            raise ZeroDivisionError("bug")
        return real_enrich(event, index)

    real_enrich = batch_module.enrich
    monkeypatch.setattr(batch_module, "enrich", explode)
    messages = [msg(0, payload("poison")), msg(1, payload("fine"))]
    result = run(messages)
    assert [d.code for d in result.dead_letters] == ["processing_error"]
    assert "ZeroDivisionError" in result.dead_letters[0].reason
    assert result.tallies[0].stored == 1


def test_identities_of_the_batch_in_flight_count_as_seen_within_the_window() -> None:
    # The pipeline prepares a batch while the previous one is written: the previous batch's
    # stored identities are passed as also_seen, with the time its dedup keys will hold.
    messages = [msg(10, payload("a")), msg(11, payload("b")), msg(12, payload("c"))]
    window_ms = 35 * DAY_MS
    result = process_batch(
        messages,
        index=index(),
        log_epoch=EPOCH,
        find_seen=FakeSeen(),
        dedup_window_days=35,
        also_seen={ident("a"): KAFKA_TS, ident("b"): KAFKA_TS - window_ms - 1},
    )
    # "a" was stored by the batch in flight; "b" only outside the window: stored again
    assert outcomes(result, messages) == ["duplicate", "stored", "stored"]
    assert result.tallies[0].duplicates == 1


def test_a_duplicate_is_a_duplicate_even_when_its_enrichment_would_fail() -> None:
    # Events are enriched while the dedup lookup runs; the duplicate decision still comes first.
    seen = FakeSeen({ident("a"): [pos(3)]})
    messages = [msg(10, payload("a", code="unknown")), msg(11, payload("b", code="unknown"))]
    result = run(messages, seen)
    assert outcomes(result, messages) == ["duplicate", "unknown_metric"]
    assert [d.code for d in result.dead_letters] == ["unknown_metric"]
