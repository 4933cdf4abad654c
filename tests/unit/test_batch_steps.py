"""The steps of process_batch one by one (streams.batch): decode, dedup window, inside test,
dedup and enrich, roll up."""

from __future__ import annotations

from sinks.store import LogPosition
from streams.batch import (
    INVALID_JSON,
    BatchResult,
    _inside_batch,
    _stored_within,
    decode_messages,
    dedup_and_enrich,
    roll_up,
)
from tests.unit.catalog_factory import index, subscription
from tests.unit.test_batch import EPOCH, TOPIC, msg, payload


def test_decode_tallies_each_partition_and_keeps_bad_bytes_as_dead_letters():
    result = BatchResult()
    messages = [msg(5, payload("a")), msg(6, b"{not json"), msg(2, payload("b"), partition=1)]
    decoded = decode_messages(messages, result)
    assert [e[1].transaction_id for e in decoded.events] == ["a", "b"]
    assert decoded.topics == {TOPIC} and decoded.earliest_ms == messages[0].timestamp
    assert [(d.message.offset, d.code) for d in result.dead_letters] == [(6, INVALID_JSON)]
    t0, t1 = result.tallies[0], result.tallies[1]
    assert (t0.from_offset, t0.to_offset, t0.consumed, t0.dead_letters) == (5, 6, 2, 1)
    assert (t1.from_offset, t1.to_offset, t1.consumed) == (2, 2, 1)


def test_decode_makes_a_rejected_message_a_dead_letter_with_its_event():
    result = BatchResult()
    decoded = decode_messages([msg(0, payload("a"))], result, {(0, 0): ("storage_rejected", "x")})
    assert decoded.events == []
    [letter] = result.dead_letters
    assert (letter.code, letter.reason, letter.event.transaction_id) == (
        "storage_rejected", "x", "a")


def test_only_identities_stored_within_the_window_count():
    assert _stored_within(None, 0) == set()
    assert _stored_within({b"a": 10, b"b": 20}, 15) == {b"b"}
    assert _stored_within({b"a": 10, b"b": 20}, 5) == {b"a", b"b"}


def test_inside_is_a_range_test_on_this_batchs_epoch_and_topic():
    result = BatchResult()
    decode_messages([msg(5, payload("a")), msg(9, payload("b"))], result)
    inside = _inside_batch(result.tallies, EPOCH, {TOPIC})
    assert inside(LogPosition(EPOCH, TOPIC, 0, 7))
    assert not inside(LogPosition(EPOCH, TOPIC, 0, 10))
    assert not inside(LogPosition("other", TOPIC, 0, 7))
    assert not inside(LogPosition(EPOCH, TOPIC, 1, 7))


def test_dedup_and_enrich_stores_the_first_copy_and_counts_the_rest():
    result = BatchResult()
    decoded = decode_messages([msg(0, payload("a")), msg(1, payload("a")),
                               msg(2, payload("b"))], result)
    stored_elsewhere = {decoded.events[2][2]: [LogPosition(EPOCH, TOPIC, 0, 99)]}
    dedup_and_enrich(decoded.events, stored_elsewhere, set(), lambda p: False,
                     index(subscriptions=[subscription()]), result)
    tally = result.tallies[0]
    assert (tally.stored, tally.duplicates) == (1, 2)
    assert [m.offset for _, m in result.stored_keys] == [0]
    roll_up(result)
    assert sum(s.events_count for s in result.rollups.values()) == len(result.rows)
