"""The msgspec fast path answers exactly as the general path, or not at all.

The general path is what ``streams.batch.decode`` does without the fast path: the size bound,
``schemas.exact_json.loads`` (numbers exact: ``int`` or ``Decimal``) and ``parse_event``.
"""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import event_json, exact_json
from schemas.bounds import MAX_EVENT_BYTES
from schemas.errors import InvalidField
from schemas.event import parse_event
from schemas.event_json import PLAIN_STREAK, parse_event_json
from streams.batch import (
    EVENT_TOO_LARGE,
    INVALID_EVENT,
    INVALID_JSON,
    VALUE_OUT_OF_RANGE,
    RawRecord,
    decode,
)

NOW_MS = 1_700_000_000_000


def general(value: bytes) -> object:
    """What the general path decides: the event, or the kind of error."""
    if len(value) > MAX_EVENT_BYTES:
        return "event_too_large"
    try:
        obj = exact_json.loads(value)
    except exact_json.JSONDecodeError:
        return "invalid_json"
    try:
        return parse_event(obj, now_ms=NOW_MS)
    except InvalidField as exc:
        return f"invalid_event:{exc.field}:{exc.code}"


def typed(event: object) -> object:
    """``event`` with each value's type beside it: ``1 == 1.0 == True``, but not here (and
    ``repr`` tells ``Decimal("1.50")`` from ``Decimal("1.5")``)."""
    if not isinstance(event, tuple):
        return event
    return tuple(
        sorted((k, type(v).__name__, repr(v)) for k, v in field.items())
        if isinstance(field, dict) else (type(field).__name__, repr(field))
        for field in event
    )


def usual(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "transaction_id": "tx-1", "external_subscription_id": "sub_1", "code": "api_calls",
        "organization_id": "org", "timestamp": 1_700_000_000.123,
        "properties": {"method": "GET", "n": 3, "f": 1.5, "b": True, "z": None},
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not _MISSING}


_MISSING = object()


class Number(str):
    """A JSON number's exact text, written verbatim into a message (see ``dump``)."""


# Number texts where exactness or a bound decides: beyond a float's digits, beyond 64 bits,
# beyond a double's range, just inside or outside Decimal(38, 12) and [1970, 2100).
EDGE_NUMBERS = [
    "12345678.123456789012", "1180591620717411303424", "-1180591620717411303424", "1e400",
    "1E-400", "-0.0", "0.0", "1.50", "1e26", "-1e26", "99999999999999999999999999.9999999999995",
    "99999999999999999999999999.999999999999", "4102444800", "4102444799.999",
    "4102444799.9999999999999999999", "1700000000.1229999999999999999", "-0.0001",
    "1e999999999999999999999", "1" + "0" * 4400,
]
numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS).map(Number),
    st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?",
                  fullmatch=True).map(Number),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8), numbers,
    st.sampled_from(["", " ", "\t", "1.5", "1e3", "-0", "2026-11-21T10:00:00Z", "x" * 257,
                     "x" * 256, "é" * 256, "é" * 257, "2100-01-01T00:00:00Z", "1e400"]),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
fields = st.sampled_from([
    "transaction_id", "external_subscription_id", "code", "organization_id", "timestamp",
    "properties", "precise_total_amount_cents", "other",
])


def dump(event: object, ensure_ascii: bool) -> bytes:
    """``json.dumps`` (it writes integers beyond 64 bits) with each :class:`Number` verbatim."""
    found: list[str] = []

    def mark(value: object) -> object:
        if isinstance(value, Number):
            found.append(str(value))
            return f"\x00{len(found) - 1}\x00"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(event), ensure_ascii=ensure_ascii)
    for i, number in enumerate(found):
        text = text.replace(json.dumps(f"\x00{i}\x00"), number, 1)
    return text.encode()


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Mostly usual events with a few fields changed, dropped, duplicated or mangled."""
    event = usual()
    for _ in range(draw(st.integers(0, 3))):
        field = draw(fields)
        choice = draw(st.integers(0, 3))
        if choice == 0:
            event.pop(field, None)
        elif choice == 1 and field == "properties":
            event[field] = draw(st.dictionaries(st.text(max_size=4), values, max_size=3))
        else:
            event[field] = draw(values)
    ascii_only = draw(st.booleans())
    raw = dump(event, ensure_ascii=ascii_only)
    mangle = draw(st.integers(0, 11))
    if mangle == 0:  # a duplicated key: the last one wins for both readers
        raw = raw[:-1] + b',"code":' + dump(draw(scalars), True) + b"}"
    elif mangle == 1:  # cut short
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mangle == 2:  # a big integer literal
        big = draw(st.integers(min_value=2**63 - 2, max_value=2**66))
        raw = raw[:-1] + b',"properties":{"big":' + str(big).encode() + b"}}"
    elif mangle == 3:  # around the size bound, in a field the fast path decodes
        event["properties"] = {"pad": ""}
        pad = MAX_EVENT_BYTES - len(dump(event, ascii_only)) + draw(st.integers(-1, 1))
        event["properties"] = {"pad": "x" * max(pad, 0)}
        raw = dump(event, ascii_only)
    return raw


def both_decoders(value: bytes) -> list[object]:
    """``parse_event_json`` trying either of its decoders first (a hint, see PLAIN_STREAK)."""
    answers = []
    for streak in (PLAIN_STREAK, 0):
        event_json._plain_streak = streak
        answers.append(parse_event_json(value, now_ms=NOW_MS))
    return answers


@settings(max_examples=1000, deadline=None)
@given(messages())
def test_fast_path_answers_as_the_general_path_or_defers(value: bytes) -> None:
    plain_first, numbers_first = both_decoders(value)
    assert typed(plain_first) == typed(numbers_first)  # the hint never changes an answer
    if plain_first is not None:
        assert typed(plain_first) == typed(general(value))
        assert type(plain_first.properties) is dict


@given(st.dictionaries(st.text(max_size=6), st.one_of(
    st.text(max_size=6), st.integers(-(2**80), 2**80), st.booleans(), st.none(),
    st.floats(allow_nan=False, allow_infinity=False), numbers.filter(
        lambda n: len(n) < 100 and "e999" not in n.lower()
    ),
), max_size=4))
def test_usual_events_take_the_fast_path(properties: dict[str, object]) -> None:
    value = dump(usual(properties=properties), ensure_ascii=False)
    fast = parse_event_json(value, now_ms=NOW_MS)
    assert fast is not None
    assert typed(fast) == typed(general(value))


def test_numbers_are_exact_on_the_fast_path() -> None:
    """Issue 16 finding 5: orjson read these as floats (12345678.12345679, 1.18e21)."""
    value = (b'{"transaction_id":"t","external_subscription_id":"s","code":"c",'
             b'"organization_id":"o","timestamp":1700000000.1229999999999999999,'
             b'"properties":{"f":12345678.123456789012,"big":1180591620717411303424,'
             b'"e":1e400,"s":"x"},"precise_total_amount_cents":0.123456789012345678901}')
    fast = parse_event_json(value, now_ms=NOW_MS)
    assert fast is not None
    assert fast.properties == {"f": Decimal("12345678.123456789012"), "big": 2**70,
                               "e": Decimal("1E+400"), "s": "x"}
    assert type(fast.properties["big"]) is int
    assert fast.timestamp_ms == 1_700_000_000_122  # a float would round up to …123
    assert fast.precise_total_amount_cents == Decimal("0.123456789012345678901")
    assert typed(fast) == typed(general(value))


@pytest.mark.parametrize("value", [
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"properties":{"n":1e999999999999999999999}}',  # beyond Decimal: invalid JSON
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"properties":{"n":1' + b"0" * 4400 + b"}}",  # beyond Python's int digits: invalid JSON
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"x":' + b"[" * 2000 + b"]" * 2000 + b"}",  # depth limit
    b'{"transaction_id":" ","external_subscription_id":"s","code":"c","organization_id":"o"}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c"}',  # no organization
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"timestamp":"2026-11-21T10:00:00"}',  # naive: rejected
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"properties":{"n":[1.5]}}',  # nested
    b"[]",
    # issue 16: bounds (schemas.bounds) are the general path's errors, never fast answers
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"precise_total_amount_cents":1e400}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"precise_total_amount_cents":"1e26"}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"precise_total_amount_cents":99999999999999999999999999.9999999999995}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"timestamp":4102444800}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"timestamp":4102444800.0}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"timestamp":-0.001}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"timestamp":"2100-01-01T00:00:00Z"}',
    b'{"transaction_id":"t","external_subscription_id":"' + b"s" * 257 + b'","code":"c",'
    b'"organization_id":"o"}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"' + b"c" * 257 + b'",'
    b'"organization_id":"o"}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"'
    + "é".encode() * 257 + b'"}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"properties":{"pad":"' + b"x" * MAX_EVENT_BYTES + b'"}}',  # over MAX_EVENT_BYTES
])
def test_what_the_general_path_rejects_takes_the_general_path(value: bytes) -> None:
    assert parse_event_json(value, now_ms=NOW_MS) is None
    assert not isinstance(general(value), tuple)


@pytest.mark.parametrize("number", [b"1e999999999999999999999", b"1" + b"0" * 4400, b"1.5"])
def test_a_field_parse_event_ignores_is_decoded_by_the_general_path(number: bytes) -> None:
    """msgspec skips an unknown field unread: a number there that exact_json cannot hold
    would be accepted by the fast path and refused by the general one (found by the property
    test above). The fast path defers; ``decode`` then gives the general path's answer."""
    value = orjson.dumps(usual())[:-1] + b',"other":' + number + b"}"
    assert parse_event_json(value, now_ms=NOW_MS) is None
    outcome = decode(RawRecord("raw", 0, 0, NOW_MS, value))
    expected = general(value)
    if isinstance(expected, tuple):
        assert outcome == expected
    else:
        assert outcome.code == INVALID_JSON  # type: ignore[union-attr]


def test_the_decoder_hint_follows_fractional_properties() -> None:
    plain = orjson.dumps(usual(properties={"s": "x", "n": 1}))
    fractional = orjson.dumps(usual(properties={"f": 1.5}))
    event_json._plain_streak = PLAIN_STREAK
    assert parse_event_json(fractional, now_ms=NOW_MS) is not None
    assert event_json._plain_streak == 0  # next messages: the decoder that reads fractions
    for i in range(PLAIN_STREAK):
        assert event_json._plain_streak == i
        assert parse_event_json(plain, now_ms=NOW_MS) is not None
    assert event_json._plain_streak == PLAIN_STREAK  # back to the typed properties
    assert parse_event_json(plain, now_ms=NOW_MS) is not None
    assert event_json._plain_streak == PLAIN_STREAK


def test_identifiers_of_256_characters_take_the_fast_path() -> None:
    value = orjson.dumps(usual(external_subscription_id="é" * 256, code="c" * 256,
                               organization_id="o" * 256, transaction_id="t" * 256))
    fast = parse_event_json(value, now_ms=NOW_MS)
    assert fast is not None and typed(fast) == typed(general(value))


def test_decode_uses_the_fast_path_and_keeps_the_error_codes() -> None:
    good = orjson.dumps(usual(timestamp=None))
    event = decode(RawRecord("raw", 0, 0, NOW_MS, good))
    assert event == parse_event(exact_json.loads(good), now_ms=NOW_MS)
    assert event.timestamp_ms == NOW_MS  # type: ignore[union-attr]
    bad_json = decode(RawRecord("raw", 0, 1, NOW_MS, b'{"code":'))
    assert bad_json.code == INVALID_JSON  # type: ignore[union-attr]
    blank = decode(RawRecord("raw", 0, 2, NOW_MS, orjson.dumps(usual(code="  "))))
    assert blank.code == INVALID_EVENT  # type: ignore[union-attr]
    assert blank.reason.startswith("code: value_is_mandatory")  # type: ignore[union-attr]


@pytest.mark.parametrize(("overrides", "code", "reason"), [
    ({"precise_total_amount_cents": "1e400"}, VALUE_OUT_OF_RANGE,
     "precise_total_amount_cents: value_is_out_of_range"),
    ({"precise_total_amount_cents": 10**26}, VALUE_OUT_OF_RANGE,
     "precise_total_amount_cents: value_is_out_of_range"),
    ({"timestamp": 4_102_444_800}, VALUE_OUT_OF_RANGE, "timestamp: value_is_out_of_range"),
    ({"timestamp": "2200-01-01T00:00:00Z"}, VALUE_OUT_OF_RANGE, "timestamp: value_is_out_of_range"),
    ({"timestamp": -1}, VALUE_OUT_OF_RANGE, "timestamp: value_is_out_of_range"),
    ({"external_subscription_id": "s" * 257}, INVALID_EVENT,
     "external_subscription_id: value_is_too_long"),
    ({"code": "c" * 257}, INVALID_EVENT, "code: value_is_too_long"),
    ({"organization_id": "o" * 257}, INVALID_EVENT, "organization_id: value_is_too_long"),
])
def test_decode_dead_letters_what_the_store_cannot_hold(
    overrides: dict[str, object], code: str, reason: str
) -> None:
    letter = decode(RawRecord("raw", 0, 0, NOW_MS, dump(usual(**overrides), True)))
    assert (letter.code, letter.event) == (code, None)  # type: ignore[union-attr]
    assert letter.reason.startswith(reason)  # type: ignore[union-attr]


def test_decode_dead_letters_a_json_number_beyond_decimal_38_12() -> None:
    value = dump(usual(precise_total_amount_cents=Number("1e400")), True)
    letter = decode(RawRecord("raw", 0, 0, NOW_MS, value))
    assert letter.code == VALUE_OUT_OF_RANGE  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [MAX_EVENT_BYTES + 1, 4 * MAX_EVENT_BYTES])
@pytest.mark.parametrize("avro", [False, True])
def test_a_message_over_max_event_bytes_is_event_too_large_before_decoding(
    size: int, avro: bool
) -> None:
    head = b"\x00\x00\x00\x00\x01" if avro else orjson.dumps(usual())[:-1] + b',"pad":"'
    value = head + b"x" * (size - len(head) - (0 if avro else 2)) + (b"" if avro else b'"}')
    assert len(value) == size
    letter = decode(RawRecord("raw", 0, 0, NOW_MS, value))
    assert letter.code == EVENT_TOO_LARGE  # type: ignore[union-attr]
    assert str(MAX_EVENT_BYTES) in letter.reason  # type: ignore[union-attr]


def test_a_message_of_exactly_max_event_bytes_is_decoded() -> None:
    head = orjson.dumps(usual())[:-1] + b',"pad":"'
    value = head + b"x" * (MAX_EVENT_BYTES - len(head) - 2) + b'"}'
    assert len(value) == MAX_EVENT_BYTES
    event = decode(RawRecord("raw", 0, 0, NOW_MS, value))
    assert event == parse_event(exact_json.loads(value), now_ms=NOW_MS)
