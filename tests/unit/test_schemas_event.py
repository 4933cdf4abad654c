"""SPEC §1 usage events: validation rules, Lago error details, Kafka JSON and partition key."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    InvalidField,
    UsageEvent,
    event_to_json_dict,
    exact_json,
    parse_event,
    partition_key,
    validate_event_payload,
)
from schemas.bounds import MAX_ID_LENGTH, MAX_INSTANT_MS

NOW = 1_763_719_200_000
ORG = "org_1"


def payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "transaction_id": "tx_1",
        "external_subscription_id": "sub_1",
        "code": "api_calls",
        "timestamp": 1700000000.123,
        "properties": {"region": "eu", "tokens": 12, "ratio": 0.5, "ok": True, "none": None},
        "precise_total_amount_cents": "12.50",
    }
    for key, value in overrides.items():
        if value is _MISSING:
            base.pop(key, None)
        else:
            base[key] = value
    return base


_MISSING = object()


def test_valid_event() -> None:
    e = parse_event(payload(), now_ms=NOW, organization_id=ORG)
    assert e == UsageEvent(
        organization_id=ORG,
        external_subscription_id="sub_1",
        code="api_calls",
        transaction_id="tx_1",
        timestamp_ms=1700000000123,
        properties={"region": "eu", "tokens": 12, "ratio": 0.5, "ok": True, "none": None},
        precise_total_amount_cents=Decimal("12.5"),
    )


def test_minimal_event_defaults() -> None:
    obj = {"transaction_id": "t", "external_subscription_id": "s", "code": "c"}
    e = parse_event(obj, now_ms=NOW, organization_id=ORG)
    assert e.timestamp_ms == NOW
    assert e.properties == {}
    assert e.precise_total_amount_cents is None


# field override, offending field, code
INVALID = [
    ({"transaction_id": _MISSING}, "transaction_id", "value_is_mandatory"),
    ({"transaction_id": None}, "transaction_id", "value_is_mandatory"),
    ({"transaction_id": ""}, "transaction_id", "value_is_mandatory"),
    ({"transaction_id": "   "}, "transaction_id", "value_is_mandatory"),  # Lago: blank?
    ({"transaction_id": 123}, "transaction_id", "invalid_type"),
    ({"transaction_id": ["tx"]}, "transaction_id", "invalid_type"),
    ({"transaction_id": "x" * 257}, "transaction_id", "value_is_too_long"),
    ({"external_subscription_id": _MISSING}, "external_subscription_id", "value_is_mandatory"),
    ({"external_subscription_id": ""}, "external_subscription_id", "value_is_mandatory"),
    ({"external_subscription_id": 7}, "external_subscription_id", "invalid_type"),
    ({"code": _MISSING}, "code", "value_is_mandatory"),
    ({"code": None}, "code", "value_is_mandatory"),
    ({"code": ""}, "code", "value_is_mandatory"),
    ({"code": True}, "code", "invalid_type"),
    ({"timestamp": "yesterday"}, "timestamp", "invalid_format"),
    ({"timestamp": ""}, "timestamp", "invalid_format"),
    ({"timestamp": True}, "timestamp", "invalid_type"),
    ({"timestamp": [1]}, "timestamp", "invalid_type"),
    ({"properties": [1, 2]}, "properties", "invalid_type"),
    ({"properties": "a=1"}, "properties", "invalid_type"),
    ({"properties": {"nested": {"a": 1}}}, "properties", "invalid_value"),
    ({"properties": {"list": [1]}}, "properties", "invalid_value"),
    ({"properties": {"nan": float("nan")}}, "properties", "invalid_value"),
    ({"properties": {"inf": float("inf")}}, "properties", "invalid_value"),
    ({"properties": {"dec": Decimal("NaN")}}, "properties", "invalid_value"),
    ({"properties": {"dec": Decimal("-Infinity")}}, "properties", "invalid_value"),
    ({"properties": {1: "int key"}}, "properties", "invalid_value"),
    ({"precise_total_amount_cents": "abc"}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": ""}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": " 1"}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": "NaN"}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": float("inf")}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": True}, "precise_total_amount_cents", "invalid_type"),
    ({"precise_total_amount_cents": {"v": 1}}, "precise_total_amount_cents", "invalid_type"),
    # issue 16: bounds of what the store can hold (schemas.bounds)
    ({"precise_total_amount_cents": "1e400"}, "precise_total_amount_cents",
     "value_is_out_of_range"),
    ({"precise_total_amount_cents": Decimal("1E+400")}, "precise_total_amount_cents",
     "value_is_out_of_range"),
    ({"precise_total_amount_cents": Decimal("1E+5000")}, "precise_total_amount_cents",
     "value_is_out_of_range"),
    ({"precise_total_amount_cents": 10**26}, "precise_total_amount_cents",
     "value_is_out_of_range"),
    ({"precise_total_amount_cents": 10**2000}, "precise_total_amount_cents",
     "value_is_out_of_range"),
    ({"precise_total_amount_cents": "-1e26"}, "precise_total_amount_cents",
     "value_is_out_of_range"),
    ({"precise_total_amount_cents": 1e300}, "precise_total_amount_cents", "value_is_out_of_range"),
    ({"precise_total_amount_cents": "99999999999999999999999999.9999999999995"},
     "precise_total_amount_cents", "value_is_out_of_range"),  # rounds to 10**26
    ({"timestamp": 4_102_444_800}, "timestamp", "value_is_out_of_range"),  # 2100-01-01
    ({"timestamp": "2100-01-01T00:00:00Z"}, "timestamp", "value_is_out_of_range"),
    ({"timestamp": "9999-12-31T23:59:59Z"}, "timestamp", "value_is_out_of_range"),
    ({"timestamp": -1}, "timestamp", "value_is_out_of_range"),
    ({"timestamp": Decimal("1E+400")}, "timestamp", "value_is_out_of_range"),
    ({"timestamp": "1969-12-31T23:59:59.999Z"}, "timestamp", "value_is_out_of_range"),
    ({"external_subscription_id": "s" * 257}, "external_subscription_id", "value_is_too_long"),
    ({"code": "c" * 257}, "code", "value_is_too_long"),
]


@pytest.mark.parametrize(("overrides", "field", "code"), INVALID)
def test_invalid_field(overrides: dict[str, Any], field: str, code: str) -> None:
    obj = payload(**overrides)
    with pytest.raises(InvalidField) as info:
        parse_event(obj, now_ms=NOW, organization_id=ORG)
    assert (info.value.field, info.value.code) == (field, code)
    assert validate_event_payload(obj, now_ms=NOW, organization_id=ORG) == {field: [code]}


@pytest.mark.parametrize("field", ["external_subscription_id", "code", "organization_id"])
def test_identifiers_of_256_characters_are_ok(field: str) -> None:
    e = parse_event(payload(**{"organization_id": ORG, field: "é" * MAX_ID_LENGTH}), now_ms=NOW)
    assert getattr(e, field) == "é" * 256


@pytest.mark.parametrize(
    ("obj", "org"), [(payload(organization_id="o" * 257), None), (payload(), "o" * 257)]
)
def test_organization_id_longer_than_256_is_too_long(obj: dict, org: str | None) -> None:
    with pytest.raises(InvalidField) as info:
        parse_event(obj, now_ms=NOW, organization_id=org)
    assert (info.value.field, info.value.code) == ("organization_id", "value_is_too_long")
    assert validate_event_payload(obj, now_ms=NOW, organization_id=org) == {
        "organization_id": ["value_is_too_long"]
    }


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("99999999999999999999999999.999999999999",
      Decimal("99999999999999999999999999.999999999999")),
     (Decimal("-99999999999999999999999999.99999999999949"),
      Decimal("-99999999999999999999999999.99999999999949")),
     (Decimal("1E-30"), Decimal("1E-30"))],
)
def test_amounts_that_fit_decimal_38_12_are_kept_exact(amount: object, expected: Decimal) -> None:
    e = parse_event(payload(precise_total_amount_cents=amount), now_ms=NOW, organization_id=ORG)
    assert e.precise_total_amount_cents == expected


def test_the_last_instant_before_2100_is_accepted() -> None:
    e = parse_event(payload(timestamp="2099-12-31T23:59:59.999Z"), now_ms=NOW, organization_id=ORG)
    assert e.timestamp_ms == MAX_INSTANT_MS - 1


def test_exact_json_numbers_are_valid_property_values() -> None:
    """Issue 16 finding 5: properties hold exact Decimals and big ints (schemas.exact_json)."""
    body = (b'{"transaction_id":"t","external_subscription_id":"s","code":"c",'
            b'"properties":{"f":12345678.123456789012,"big":1180591620717411303424,"e":1e400}}')
    e = parse_event(exact_json.loads(body), now_ms=NOW, organization_id=ORG)
    assert e.properties == {"f": Decimal("12345678.123456789012"),
                            "big": 2**70, "e": Decimal("1E+400")}
    assert type(e.properties["big"]) is int
    wire = exact_json.dumps(event_to_json_dict(e))
    assert b'"f":12345678.123456789012' in wire and b'"big":1180591620717411303424' in wire
    assert parse_event(exact_json.loads(wire), now_ms=0) == e


def test_transaction_id_of_256_characters_is_ok() -> None:
    e = parse_event(payload(transaction_id="x" * 256), now_ms=NOW, organization_id=ORG)
    assert len(e.transaction_id) == 256


def test_transaction_id_length_counts_characters_not_bytes() -> None:
    e = parse_event(payload(transaction_id="é" * 256), now_ms=NOW, organization_id=ORG)
    assert e.transaction_id == "é" * 256


@pytest.mark.parametrize("obj", [None, [], "event", 1, [payload()]])
def test_non_object_event(obj: object) -> None:
    with pytest.raises(InvalidField) as info:
        parse_event(obj, now_ms=NOW, organization_id=ORG)
    assert (info.value.field, info.value.code) == ("event", "invalid_type")
    assert validate_event_payload(obj, now_ms=NOW, organization_id=ORG) == {
        "event": ["invalid_type"]
    }


@pytest.mark.parametrize(
    ("properties", "expected"),
    [(_MISSING, {}), (None, {}), ({}, {}), ({"a": "1", "b": -2, "c": 1e-7}, None)],
)
def test_properties_optional(properties: object, expected: dict[str, object] | None) -> None:
    obj = payload(properties=properties)
    e = parse_event(obj, now_ms=NOW, organization_id=ORG)
    assert e.properties == (obj["properties"] if expected is None else expected)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(_MISSING, None), (None, None), ("12.50", Decimal("12.5")), (3, Decimal(3)),
     (0.1, Decimal("0.1")), ("-4", Decimal(-4)), ("1e3", Decimal(1000)),
     ("0.000000000001", Decimal("1E-12"))],
)
def test_precise_total_amount_cents(amount: object, expected: Decimal | None) -> None:
    e = parse_event(payload(precise_total_amount_cents=amount), now_ms=NOW, organization_id=ORG)
    assert e.precise_total_amount_cents == expected


def test_organization_id_argument_wins_over_payload() -> None:
    obj = payload(organization_id="org_from_payload")
    assert parse_event(obj, now_ms=NOW, organization_id=ORG).organization_id == ORG


def test_organization_id_from_payload_when_no_argument() -> None:
    obj = payload(organization_id="org_from_payload")
    assert parse_event(obj, now_ms=NOW).organization_id == "org_from_payload"


@pytest.mark.parametrize(
    ("org", "code"), [(_MISSING, "value_is_mandatory"), ("", "value_is_mandatory"),
                      (None, "value_is_mandatory"), (42, "invalid_type")]
)
def test_organization_id_required_without_argument(org: object, code: str) -> None:
    obj = payload(organization_id=org)
    with pytest.raises(InvalidField) as info:
        parse_event(obj, now_ms=NOW)
    assert (info.value.field, info.value.code) == ("organization_id", code)
    assert validate_event_payload(obj, now_ms=NOW) == {"organization_id": [code]}


def test_unknown_fields_are_ignored() -> None:
    e = parse_event(payload(extra={"x": [1]}), now_ms=NOW, organization_id=ORG)
    assert e.transaction_id == "tx_1"


def test_validate_event_payload_collects_every_error() -> None:
    obj = {
        "transaction_id": "x" * 300,
        "code": 5,
        "timestamp": "soon",
        "properties": {"a": {"b": 1}},
        "precise_total_amount_cents": "lots",
    }
    assert validate_event_payload(obj, now_ms=NOW) == {
        "transaction_id": ["value_is_too_long"],
        "external_subscription_id": ["value_is_mandatory"],
        "code": ["invalid_type"],
        "timestamp": ["invalid_format"],
        "properties": ["invalid_value"],
        "precise_total_amount_cents": ["invalid_value"],
        "organization_id": ["value_is_mandatory"],
    }


def test_validate_event_payload_empty_when_valid() -> None:
    assert validate_event_payload(payload(), now_ms=NOW, organization_id=ORG) == {}


def test_event_to_json_dict() -> None:
    e = parse_event(payload(), now_ms=NOW, organization_id=ORG)
    assert event_to_json_dict(e) == {
        "organization_id": ORG,
        "external_subscription_id": "sub_1",
        "code": "api_calls",
        "transaction_id": "tx_1",
        "timestamp": "1700000000.123",
        "properties": {"region": "eu", "tokens": 12, "ratio": 0.5, "ok": True, "none": None},
        "precise_total_amount_cents": "12.5",
    }


@pytest.mark.parametrize(
    "overrides",
    [{}, {"precise_total_amount_cents": _MISSING, "properties": _MISSING, "timestamp": _MISSING},
     {"timestamp": "2026-11-21T10:00:00.999999+05:45"}, {"precise_total_amount_cents": 1e-9}],
)
def test_json_round_trip(overrides: dict[str, Any]) -> None:
    e = parse_event(payload(**overrides), now_ms=NOW, organization_id=ORG)
    assert parse_event(event_to_json_dict(e), now_ms=0) == e
    wire = orjson.loads(orjson.dumps(event_to_json_dict(e)))
    assert parse_event(wire, now_ms=0) == e
    exact = exact_json.loads(exact_json.dumps(event_to_json_dict(e)))
    assert parse_event(exact, now_ms=0) == e


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
_exact_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.decimals(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
_amounts = st.one_of(st.none(), st.decimals(
    min_value=-(10**26) + 1, max_value=10**26 - 1, allow_nan=False, allow_infinity=False,
    places=6,
).map(lambda d: d.normalize() if d else Decimal(0)).filter(lambda d: d.as_tuple().exponent <= 0))


@given(
    tx=st.text(min_size=1, max_size=256).filter(lambda s: not s.isspace()),
    ts=st.integers(min_value=0, max_value=MAX_INSTANT_MS - 1),
    props=st.dictionaries(st.text(max_size=6), _scalars, max_size=5),
    amount=_amounts,
)
def test_property_round_trip(
    tx: str, ts: int, props: dict[str, object], amount: Decimal | None
) -> None:
    e = UsageEvent(ORG, "sub", "code", tx, ts, props, amount)
    again = parse_event(orjson.loads(orjson.dumps(event_to_json_dict(e))), now_ms=0)
    assert again == e


@given(
    ts=st.integers(min_value=0, max_value=MAX_INSTANT_MS - 1),
    props=st.dictionaries(st.text(max_size=6), _exact_scalars, max_size=5),
    amount=_amounts,
)
def test_property_exact_json_round_trip_keeps_every_digit(
    ts: int, props: dict[str, object], amount: Decimal | None
) -> None:
    e = UsageEvent(ORG, "sub", "code", "tx", ts, props, amount)
    again = parse_event(exact_json.loads(exact_json.dumps(event_to_json_dict(e))), now_ms=0)
    assert again == e
    for key, value in props.items():  # same value, same type: no float on the way
        if isinstance(value, Decimal) and value.as_tuple().exponent == 0:
            value = int(value)  # Decimal("5") is written 5: an int again (schemas.exact_json)
        assert type(again.properties[key]) is type(value)
        assert str(again.properties[key]) == str(value)


def test_partition_key() -> None:
    assert partition_key("org_1", "sub_1") == b"org_1-sub_1"
    assert partition_key("ö", "s") == "ö-s".encode()


def test_invalid_field_is_a_value_error_and_pickles() -> None:
    err = InvalidField("code", "invalid_type", "code must be a string")
    assert isinstance(err, ValueError)
    assert str(err) == "code must be a string"
    again = pickle.loads(pickle.dumps(err))
    assert (again.field, again.code, again.message) == ("code", "invalid_type", err.message)
    assert InvalidField("code", "value_is_mandatory").message == "code: value_is_mandatory"


def test_usage_event_is_frozen() -> None:
    e = parse_event(payload(), now_ms=NOW, organization_id=ORG)
    with pytest.raises(AttributeError):
        e.code = "other"  # type: ignore[misc]
