"""The Avro fast path answers only when the general path (fastavro + parse_event) agrees."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.avro import AvroDecodeError, decode_confluent, encode_confluent
from schemas.avro_fast import parse_event_avro
from schemas.errors import InvalidField
from schemas.event import UsageEvent, parse_event

NOW_MS = 1_780_000_000_000
TEXT = st.text(min_size=0, max_size=8)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), TEXT,
                   st.floats(allow_nan=True))
ID = st.one_of(st.text(min_size=1, max_size=8), TEXT)  # mostly valid ids
RECORDS = st.fixed_dictionaries(
    {"transaction_id": ID, "external_subscription_id": ID, "code": ID, "organization_id": ID},
    optional={
        "timestamp": st.one_of(
            st.none(), st.floats(0, 5e9), st.tuples(st.just("long"), st.integers(-10, 5 * 10**9)),
            st.sampled_from(["1780000000", "2026-01-01T00:00:00Z", "x", ""])),
        "properties": st.one_of(st.none(), st.dictionaries(TEXT, VALUES, max_size=4),
                                st.dictionaries(TEXT, st.one_of(TEXT, st.integers()))),
        "precise_total_amount_cents": st.one_of(
            st.none(), st.sampled_from(["12.5", "1e400", "x", "0.0000000000001", "-3"])),
    },
)


def general(value: bytes) -> UsageEvent | str:
    try:
        return parse_event(decode_confluent(value), now_ms=NOW_MS)
    except (AvroDecodeError, InvalidField) as exc:
        return type(exc).__name__


def check(value: bytes) -> UsageEvent | None:
    fast = parse_event_avro(value, now_ms=NOW_MS)
    if fast is not None:
        assert fast == general(value)
        assert [type(v) for v in fast.properties.values()] == [
            type(v) for v in general(value).properties.values()]  # type: ignore[union-attr]
    return fast


@settings(max_examples=1500, deadline=None)
@given(RECORDS, st.data())
def test_the_fast_path_agrees_with_fastavro_and_parse_event(
    record: dict[str, Any], data: st.DataObject
) -> None:
    value = encode_confluent(record)
    check(value)
    cut = data.draw(st.integers(0, len(value)))
    check(value[:cut])  # truncated
    check(value + data.draw(st.binary(min_size=1, max_size=3)))  # trailing bytes
    flipped = bytearray(value)
    at = data.draw(st.integers(0, len(value) - 1))
    flipped[at] = data.draw(st.integers(0, 255))
    check(bytes(flipped))  # corrupted


@pytest.mark.parametrize("properties", [None, {}, {"gb": "1.5", "region": "eu", "n": 3,
                                                  "on": True, "off": False, "none": None}])
def test_the_usual_event_takes_the_fast_path(properties: dict[str, Any] | None) -> None:
    record = {"transaction_id": "t", "external_subscription_id": "s", "code": "c",
              "organization_id": "o", "timestamp": 1_780_000_000.123,
              "properties": properties, "precise_total_amount_cents": "12.5"}
    event = check(encode_confluent(record))
    assert event is not None and event.timestamp_ms == 1_780_000_000_123


@pytest.mark.parametrize("record", [
    {"properties": {"x": 1.5}},  # a double property: the general path keeps the float
    {"organization_id": None},  # required: the general path names the field
    {"timestamp": "garbage"},
    {"precise_total_amount_cents": "x"},
])
def test_unusual_messages_take_the_general_path(record: dict[str, Any]) -> None:
    base = {"transaction_id": "t", "external_subscription_id": "s", "code": "c",
            "organization_id": "o", "timestamp": 1_780_000_000.0}
    assert parse_event_avro(encode_confluent({**base, **record}), now_ms=NOW_MS) is None
