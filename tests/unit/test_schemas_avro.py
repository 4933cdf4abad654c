"""Avro usage events in the Confluent wire format (SPEC §1) and their path through batch.decode.

Decision: the first byte tells the formats apart (JSON never starts with byte 0), so a value
starting with byte 0 but shorter than the 5-byte header is ``invalid_avro``, not ``invalid_json``.
"""

from __future__ import annotations

import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest

import schemas.avro as avro_module
from enrichment.catalog_index import CatalogIndex
from schemas.avro import (
    DEFAULT_SCHEMA_DIR,
    AvroDecodeError,
    decode_confluent,
    encode_confluent,
    is_confluent_avro,
    load_schemas,
)
from schemas.event import UsageEvent, event_to_json_dict
from streams.batch import (
    INVALID_AVRO,
    INVALID_JSON,
    DeadLetter,
    RawRecord,
    decode,
    process_batch,
)
from tests.unit.catalog_factory import ORG, START_MS, index, subscription

KAFKA_TS = START_MS + 7_200_000
TS_S = 1_735_693_200  # START_MS + 1 h, in seconds


def message(value: bytes | None, offset: int = 0) -> RawRecord:
    return RawRecord("events-raw", 0, offset, KAFKA_TS, value)


def body(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "organization_id": ORG,
        "external_subscription_id": "sub_ext_1",
        "code": "api",
        "transaction_id": "tx_1",
        "timestamp": TS_S,
        "properties": {"amount": 3},
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def as_avro(event: dict[str, Any]) -> RawRecord:
    return message(encode_confluent(event))


def as_json(event: dict[str, Any]) -> RawRecord:
    return message(orjson.dumps(event))


def decoded(msg: RawRecord) -> UsageEvent:
    result = decode(msg)
    assert isinstance(result, UsageEvent), result
    return result


def dead(msg: RawRecord) -> DeadLetter:
    result = decode(msg)
    assert isinstance(result, DeadLetter), result
    return result


# ------------------------------------------------------------------------------------------------
# round trips: Avro and JSON give the same event


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(body(), id="minimal-with-properties"),
        pytest.param(
            body(
                timestamp="1735693200.123",
                properties={"region": "eu", "gb": 1.5, "n": 7, "ok": True, "none": None},
                precise_total_amount_cents="1234.5678",
            ),
            id="all-fields",
        ),
        pytest.param(body(timestamp="2025-01-01T01:00:00.999Z"), id="rfc3339-timestamp"),
        pytest.param(body(timestamp=None, properties=None), id="no-optional-fields"),
    ],
)
def test_avro_decodes_to_the_same_event_as_json(event: dict[str, Any]) -> None:
    assert decoded(as_avro(event)) == decoded(as_json(event))


def test_event_to_json_dict_round_trips_through_avro() -> None:
    original = decoded(
        as_json(body(properties={"a": "x", "b": 2}, precise_total_amount_cents="0.001"))
    )
    assert decoded(message(encode_confluent(event_to_json_dict(original)))) == original


def test_schema_fields_are_the_json_event_fields() -> None:
    [schema] = load_schemas().values()
    names = {f["name"] for f in schema["fields"]}
    assert names == set(event_to_json_dict(decoded(as_json(body()))))
    assert schema["name"] == "meterline.UsageEvent"


def test_wire_header_is_magic_byte_and_big_endian_schema_id() -> None:
    value = encode_confluent(body())
    assert value[:5] == b"\x00\x00\x00\x00\x01"
    assert is_confluent_avro(value)


# ------------------------------------------------------------------------------------------------
# field values


def test_property_values_keep_their_types() -> None:
    props = {
        "flag": True,
        "off": False,
        "count": 3,
        "big": 2**62,
        "ratio": 0.25,
        "s": "1",
        "nil": None,
    }
    record = decode_confluent(encode_confluent(body(properties=props)))
    assert record["properties"] == props
    assert {k: type(v) for k, v in record["properties"].items()} == {
        k: type(v) for k, v in props.items()
    }
    assert decoded(as_avro(body(properties=props))).properties == props


@pytest.mark.parametrize(
    ("timestamp", "wire_type", "expected_ms"),
    [
        pytest.param(1735693200.123, float, 1_735_693_200_123, id="double"),
        pytest.param(("long", TS_S), int, TS_S * 1000, id="long"),
        pytest.param(TS_S, float, TS_S * 1000, id="python-int-goes-to-double-branch-losslessly"),
        pytest.param("1735693200.5", str, 1_735_693_200_500, id="numeric-string"),
        pytest.param("2025-01-01T03:00:00.25+02:00", str, 1_735_693_200_250, id="rfc3339"),
    ],
)
def test_timestamp_branches(timestamp: Any, wire_type: type, expected_ms: int) -> None:
    value = encode_confluent(body(timestamp=timestamp))
    assert type(decode_confluent(value)["timestamp"]) is wire_type
    assert decoded(message(value)).timestamp_ms == expected_ms


def test_invalid_timestamp_string_is_invalid_event_as_in_json() -> None:
    bad = body(timestamp="2025-01-01T01:00:00")  # naive: rejected in JSON too
    assert dead(as_avro(bad)).code == dead(as_json(bad)).code == "invalid_event"


def test_missing_optional_fields_are_dropped_and_defaulted() -> None:
    value = encode_confluent(
        {"transaction_id": "tx_1", "external_subscription_id": "sub_ext_1", "code": "api"}
    )
    assert decode_confluent(value) == {
        "transaction_id": "tx_1",
        "external_subscription_id": "sub_ext_1",
        "code": "api",
    }
    value = encode_confluent(body(timestamp=None, properties=None))
    event = decoded(message(value))
    assert event.timestamp_ms == KAFKA_TS
    assert event.properties == {}
    assert event.precise_total_amount_cents is None


def test_precise_total_amount_cents_is_a_decimal() -> None:
    event = decoded(as_avro(body(precise_total_amount_cents="10.50")))
    assert event.precise_total_amount_cents == Decimal("10.5")


def test_missing_organization_id_is_invalid_event_as_in_json() -> None:
    event = body(organization_id=None)
    avro_dead, json_dead = dead(as_avro(event)), dead(as_json(event))
    assert avro_dead.code == json_dead.code == "invalid_event"
    assert avro_dead.reason == json_dead.reason
    assert "organization_id" in avro_dead.reason


def test_blank_transaction_id_is_invalid_event_as_in_json() -> None:
    event = body(transaction_id="  ")
    assert dead(as_avro(event)).reason == dead(as_json(event)).reason


# ------------------------------------------------------------------------------------------------
# undecodable Avro → invalid_avro


def test_unknown_schema_id_is_invalid_avro_naming_the_id() -> None:
    value = b"\x00" + struct.pack(">I", 42) + encode_confluent(body())[5:]
    letter = dead(message(value))
    assert letter.code == INVALID_AVRO
    assert "schema id 42" in letter.reason
    assert letter.message.value == value
    with pytest.raises(AvroDecodeError) as info:
        decode_confluent(value)
    assert info.value.schema_id == 42


def test_every_truncation_is_invalid_avro() -> None:
    value = encode_confluent(
        body(properties={"a": 1.5, "b": True, "c": "x"}, precise_total_amount_cents="1")
    )
    for end in range(5, len(value)):
        letter = dead(message(value[:end]))
        assert letter.code == INVALID_AVRO, end
        assert "schema id 1" in letter.reason
        assert "truncated" in letter.reason


def test_trailing_bytes_are_invalid_avro() -> None:
    letter = dead(message(encode_confluent(body()) + b"\x00"))
    assert letter.code == INVALID_AVRO
    assert "1 trailing bytes" in letter.reason


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xff" * 12, id="garbage"),
        pytest.param(b"\x06t\xff\xfe\x02s\x02c\x00\x00\x00\x00", id="invalid-utf8"),
    ],
)
def test_corrupt_record_is_invalid_avro(payload: bytes) -> None:
    letter = dead(message(b"\x00\x00\x00\x00\x01" + payload))
    assert letter.code == INVALID_AVRO
    assert "schema id 1" in letter.reason


@pytest.mark.parametrize("value", [b"\x00", b"\x00\x00", b"\x00\x00\x00\x01"])
def test_zero_led_value_shorter_than_the_header_is_invalid_avro(value: bytes) -> None:
    assert not is_confluent_avro(value)
    letter = dead(message(value))
    assert letter.code == INVALID_AVRO
    assert "5 bytes" in letter.reason


# ------------------------------------------------------------------------------------------------
# JSON is untouched


def test_json_still_decodes_as_json() -> None:
    value = orjson.dumps(body())
    assert not is_confluent_avro(value)
    assert decoded(message(value)).transaction_id == "tx_1"
    assert dead(message(b"{not json")).code == INVALID_JSON
    assert dead(message(None)).code == INVALID_JSON
    assert dead(message(b"")).code == INVALID_JSON


def test_json_and_avro_share_one_identity_in_a_batch() -> None:
    messages = [as_json(body()), RawRecord("events-raw", 0, 1, KAFKA_TS, as_avro(body()).value)]
    idx: CatalogIndex = index(subscriptions=[subscription()])
    result = process_batch(
        messages, index=idx, log_epoch="e", find_seen=lambda ids, since: {}, dedup_window_days=35
    )
    assert result.tallies[0].stored == 1
    assert result.tallies[0].duplicates == 1


# ------------------------------------------------------------------------------------------------
# schema loading


def test_default_schemas_are_cached() -> None:
    assert load_schemas() is load_schemas()
    assert set(load_schemas()) == {1}
    assert (DEFAULT_SCHEMA_DIR / "usage_event-1.avsc").is_file()


@pytest.fixture
def fresh_schema_cache() -> Any:
    avro_module._default_schemas.cache_clear()
    yield
    avro_module._default_schemas.cache_clear()


def test_schemas_are_parsed_once_not_per_message(
    monkeypatch: pytest.MonkeyPatch, fresh_schema_cache: None
) -> None:
    calls: list[object] = []
    real = fastavro.parse_schema

    def counting(schema: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(schema)
        return real(schema, *args, **kwargs)

    monkeypatch.setattr(fastavro, "parse_schema", counting)
    values = [encode_confluent(body(transaction_id=f"tx_{i}")) for i in range(50)]
    for i, value in enumerate(values):
        assert decoded(message(value, offset=i)).transaction_id == f"tx_{i}"
    assert len(calls) == 1  # the one shipped schema file, parsed on first use


def test_load_schemas_reads_ids_from_file_names(tmp_path: Path) -> None:
    text = (DEFAULT_SCHEMA_DIR / "usage_event-1.avsc").read_text()
    (tmp_path / "usage_event-7.avsc").write_text(text)
    (tmp_path / "other-12.avsc").write_text(text)
    found = load_schemas(tmp_path)
    assert set(found) == {7, 12}
    value = encode_confluent(body(), schema_id=12, schemas=found)
    assert value[:5] == b"\x00\x00\x00\x00\x0c"
    assert decode_confluent(value, found)["transaction_id"] == "tx_1"
    with pytest.raises(AvroDecodeError, match="unknown Avro schema id 12"):
        decode_confluent(value)  # not in the shipped schemas


def test_load_schemas_rejects_names_without_id_and_duplicate_ids(tmp_path: Path) -> None:
    text = (DEFAULT_SCHEMA_DIR / "usage_event-1.avsc").read_text()
    (tmp_path / "usage_event.avsc").write_text(text)
    with pytest.raises(ValueError, match=r"-<id>\.avsc"):
        load_schemas(tmp_path)
    (tmp_path / "usage_event.avsc").unlink()
    (tmp_path / "a-3.avsc").write_text(text)
    (tmp_path / "b-03.avsc").write_text(text)
    with pytest.raises(ValueError, match="schema id 3"):
        load_schemas(tmp_path)


def test_encode_rejects_unknown_schema_id_and_bad_records() -> None:
    with pytest.raises(KeyError):
        encode_confluent(body(), schema_id=99)
    with pytest.raises(ValueError):
        encode_confluent(body(properties={"nested": {"a": 1}}))
    with pytest.raises(ValueError):
        encode_confluent({"code": "api"})
