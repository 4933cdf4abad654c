"""The msgspec fast path answers exactly as ``parse_event(orjson.loads(...))``, or not at all."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import InvalidField
from schemas.event import parse_event
from schemas.event_json import parse_event_json
from streams.batch import INVALID_EVENT, INVALID_JSON, RawRecord, decode

NOW_MS = 1_700_000_000_000


def general(value: bytes) -> object:
    """What the general path decides: the event, or the kind of error."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "invalid_json"
    try:
        return parse_event(obj, now_ms=NOW_MS)
    except InvalidField as exc:
        return f"invalid_event:{exc.field}:{exc.code}"


def typed(event: object) -> object:
    """``event`` with each value's type beside it: ``1 == 1.0 == True``, but not here."""
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

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["", " ", "\t", "1.5", "1e3", "-0", "2026-11-21T10:00:00Z", "x" * 257]),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
fields = st.sampled_from([
    "transaction_id", "external_subscription_id", "code", "organization_id", "timestamp",
    "properties", "precise_total_amount_cents", "other",
])


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
    # json, not orjson: it writes integers beyond 64 bits, and escapes non-ASCII when asked
    raw = json.dumps(event, ensure_ascii=draw(st.booleans())).encode()
    mangle = draw(st.integers(0, 9))
    if mangle == 0:  # a duplicated key: the last one wins for both readers
        raw = raw[:-1] + b',"code":' + json.dumps(draw(scalars)).encode() + b"}"
    elif mangle == 1:  # cut short
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mangle == 2:  # a big integer literal orjson reads as a float
        big = draw(st.integers(min_value=2**63 - 2, max_value=2**66))
        raw = raw[:-1] + b',"properties":{"big":' + str(big).encode() + b"}}"
    return raw


@settings(max_examples=600, deadline=None)
@given(messages())
def test_fast_path_answers_as_the_general_path_or_defers(value: bytes) -> None:
    fast = parse_event_json(value, now_ms=NOW_MS)
    if fast is not None:
        assert typed(fast) == typed(general(value))
        assert type(fast.properties) is dict


@given(st.dictionaries(st.text(max_size=6), st.one_of(
    st.text(max_size=6), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
), max_size=4))
def test_usual_events_take_the_fast_path(properties: dict[str, object]) -> None:
    value = orjson.dumps(usual(properties=properties))
    fast = parse_event_json(value, now_ms=NOW_MS)
    assert fast is not None
    assert typed(fast) == typed(general(value))


@pytest.mark.parametrize("value", [
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"properties":{"n":123456789012345678901234567890}}',  # orjson: a float
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"properties":{"n":1e400}}',  # orjson: invalid JSON
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"x":' + b"[" * 2000 + b"]" * 2000 + b"}",  # orjson: depth limit
    b'{"transaction_id":" ","external_subscription_id":"s","code":"c","organization_id":"o"}',
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c"}',  # no organization
    b'{"transaction_id":"t","external_subscription_id":"s","code":"c","organization_id":"o",'
    b'"timestamp":"2026-11-21T10:00:00"}',  # naive: rejected
    b"[]",
])
def test_what_the_readers_disagree_on_or_reject_takes_the_general_path(value: bytes) -> None:
    assert parse_event_json(value, now_ms=NOW_MS) is None


def test_decode_uses_the_fast_path_and_keeps_the_error_codes() -> None:
    good = orjson.dumps(usual(timestamp=None))
    event = decode(RawRecord("raw", 0, 0, NOW_MS, good))
    assert event == parse_event(orjson.loads(good), now_ms=NOW_MS)
    assert event.timestamp_ms == NOW_MS  # type: ignore[union-attr]
    bad_json = decode(RawRecord("raw", 0, 1, NOW_MS, b'{"code":'))
    assert bad_json.code == INVALID_JSON  # type: ignore[union-attr]
    blank = decode(RawRecord("raw", 0, 2, NOW_MS, orjson.dumps(usual(code="  "))))
    assert blank.code == INVALID_EVENT  # type: ignore[union-attr]
    assert blank.reason.startswith("code: value_is_mandatory")  # type: ignore[union-attr]
