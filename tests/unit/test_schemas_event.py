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
    parse_event,
    partition_key,
    validate_event_payload,
)

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
    ({"properties": {"dec": Decimal("1")}}, "properties", "invalid_value"),
    ({"properties": {1: "int key"}}, "properties", "invalid_value"),
    ({"precise_total_amount_cents": "abc"}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": ""}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": " 1"}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": "NaN"}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": float("inf")}, "precise_total_amount_cents", "invalid_value"),
    ({"precise_total_amount_cents": True}, "precise_total_amount_cents", "invalid_type"),
    ({"precise_total_amount_cents": {"v": 1}}, "precise_total_amount_cents", "invalid_type"),
]


@pytest.mark.parametrize(("overrides", "field", "code"), INVALID)
def test_invalid_field(overrides: dict[str, Any], field: str, code: str) -> None:
    obj = payload(**overrides)
    with pytest.raises(InvalidField) as info:
        parse_event(obj, now_ms=NOW, organization_id=ORG)
    assert (info.value.field, info.value.code) == (field, code)
    assert validate_event_payload(obj, now_ms=NOW, organization_id=ORG) == {field: [code]}


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


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)


@given(
    tx=st.text(min_size=1, max_size=256).filter(lambda s: not s.isspace()),
    ts=st.integers(min_value=0, max_value=253_402_300_799_999),
    props=st.dictionaries(st.text(max_size=6), _scalars, max_size=5),
    amount=st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=6)),
)
def test_property_round_trip(
    tx: str, ts: int, props: dict[str, object], amount: Decimal | None
) -> None:
    e = UsageEvent(ORG, "sub", "code", tx, ts, props, amount)
    again = parse_event(orjson.loads(orjson.dumps(event_to_json_dict(e))), now_ms=0)
    assert again == e


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
