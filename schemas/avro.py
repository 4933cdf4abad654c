"""Avro usage events in the Confluent wire format (SPEC §1: "an Avro record with the same fields").

Wire format: byte 0 is the magic byte ``0``, bytes 1..4 the schema id (big-endian unsigned
32-bit), then the record in Avro binary encoding (no container header). Schemas live in
``schemas/avro/<name>-<id>.avsc``; the file name carries the id (``usage_event-1.avsc`` is id 1).
This module is pure: no Kafka, no schema registry.

Decisions:

* A JSON payload never starts with byte 0 (JSON text starts with whitespace, ``{``, ``[``, a
  quote, a digit, ``-``, ``t``/``f``/``n`` or a UTF BOM), so the first byte tells the formats
  apart; :func:`is_confluent_avro` also requires the full 5-byte header.
* :func:`decode_confluent` raises :class:`AvroDecodeError` for a short header, a wrong magic
  byte, an unknown schema id, bytes that do not decode with the schema (truncated, corrupt,
  invalid UTF-8) and for trailing bytes after the record (a sure sign of a wrong schema).
* The decoded record is shaped like a decoded JSON event for :func:`schemas.event.parse_event`:
  optional fields that are null are dropped (parse_event treats missing and null alike);
  property values are kept as decoded (bool/int/float/str/None).
* ``timestamp`` is ``["null", "double", "long", "string"]``: fastavro's writer puts a Python
  ``int`` in the first numeric branch that accepts it (``double``), which is lossless for every
  valid timestamp (< 2**53 s). Use fastavro's tuple notation ``("long", 1700000000)`` to force
  the ``long`` branch; a reader accepts all three branches with the same rules as JSON.
* Per message: one header unpack, one dict lookup, one ``schemaless_reader`` call on an
  already-parsed schema. Schemas are parsed once (:func:`load_schemas` caches the default
  directory).
"""

from __future__ import annotations

import functools
import io
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastavro
import orjson

__all__ = [
    "DEFAULT_SCHEMA_DIR",
    "DEFAULT_SCHEMA_ID",
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "AvroDecodeError",
    "decode_confluent",
    "encode_confluent",
    "is_confluent_avro",
    "load_schemas",
]

#: The directory of the shipped ``*-<id>.avsc`` files (package data).
DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
#: The schema id producers write by default (``usage_event-1.avsc``).
DEFAULT_SCHEMA_ID = 1
#: First byte of a Confluent-framed message.
MAGIC_BYTE = 0
#: Magic byte + 4-byte schema id.
HEADER_SIZE = 5

_HEADER = struct.Struct(">BI")
_SCHEMA_FILE = re.compile(r"^.+-(\d+)\.avsc$")
# Optional fields: dropped from the decoded record when null.
_OPTIONAL_FIELDS = ("organization_id", "timestamp", "properties", "precise_total_amount_cents")


class AvroDecodeError(ValueError):
    """A Confluent-framed Avro message that cannot be decoded; ``schema_id`` when it was read."""

    def __init__(self, message: str, schema_id: int | None = None) -> None:
        super().__init__(message)
        self.schema_id = schema_id


def _load(directory: Path) -> dict[int, Any]:
    schemas: dict[int, Any] = {}
    names: dict[int, str] = {}
    for path in sorted(directory.glob("*.avsc")):
        match = _SCHEMA_FILE.match(path.name)
        if match is None:
            raise ValueError(f"{path}: an Avro schema file name must end with -<id>.avsc")
        schema_id = int(match.group(1))
        if schema_id in schemas:
            raise ValueError(f"{path}: schema id {schema_id} is also used by {names[schema_id]}")
        schemas[schema_id] = fastavro.parse_schema(orjson.loads(path.read_bytes()))
        names[schema_id] = path.name
    return schemas


@functools.cache
def _default_schemas() -> dict[int, Any]:
    return _load(DEFAULT_SCHEMA_DIR)


def load_schemas(directory: Path | None = None) -> dict[int, Any]:
    """Schema id → parsed schema for every ``*-<id>.avsc`` file of ``directory``.

    ``None`` means the shipped schemas (:data:`DEFAULT_SCHEMA_DIR`), parsed once and cached: the
    same dict is returned on every call, do not mutate it. Another directory is read afresh.
    Raises ``ValueError`` for an ``.avsc`` name without an id or an id used twice.
    """
    if directory is None:
        return _default_schemas()
    return _load(Path(directory))


def is_confluent_avro(value: bytes) -> bool:
    """True when ``value`` starts with the magic byte 0 and holds the 5-byte header."""
    return len(value) >= HEADER_SIZE and value[0] == MAGIC_BYTE


def decode_confluent(value: bytes, schemas: Mapping[int, Any] | None = None) -> dict[str, Any]:
    """Decode one Confluent-framed Avro record into a dict for ``parse_event``.

    ``schemas`` maps schema id → parsed schema (default: :func:`load_schemas`). Null optional
    fields are dropped. Raises :class:`AvroDecodeError` naming the schema id and what failed.
    """
    if len(value) < HEADER_SIZE:
        raise AvroDecodeError(
            f"Confluent Avro header needs {HEADER_SIZE} bytes (magic byte + schema id), "
            f"got {len(value)}"
        )
    magic, schema_id = _HEADER.unpack_from(value)
    if magic != MAGIC_BYTE:
        raise AvroDecodeError(f"not Confluent Avro: magic byte is {magic}, expected 0")
    if schemas is None:
        schemas = _default_schemas()
    schema = schemas.get(schema_id)
    if schema is None:
        known = ", ".join(map(str, sorted(schemas))) or "none"
        raise AvroDecodeError(f"unknown Avro schema id {schema_id} (known: {known})", schema_id)
    fo = io.BytesIO(value)  # shares a bytes object's buffer: no copy
    fo.seek(HEADER_SIZE)
    try:
        record = fastavro.schemaless_reader(fo, schema)
    except Exception as exc:  # untrusted bytes: EOFError, IndexError, UnicodeDecodeError, …
        if isinstance(exc, EOFError):
            what = "truncated record (unexpected end of data)"
        else:
            what = f"corrupt record ({type(exc).__name__}: {exc!s:.200})"
        raise AvroDecodeError(f"Avro schema id {schema_id}: {what}", schema_id) from None
    trailing = len(value) - fo.tell()
    if trailing:
        raise AvroDecodeError(
            f"Avro schema id {schema_id}: {trailing} trailing bytes after the record", schema_id
        )
    if type(record) is not dict:
        raise AvroDecodeError(f"Avro schema id {schema_id}: not a record", schema_id)
    for name in _OPTIONAL_FIELDS:
        if record.get(name, record) is None:
            del record[name]
    return record


def encode_confluent(
    record: Mapping[str, Any],
    schema_id: int = DEFAULT_SCHEMA_ID,
    schemas: Mapping[int, Any] | None = None,
) -> bytes:
    """Encode ``record`` as a Confluent-framed Avro message with schema ``schema_id``.

    For producers, tests and benchmarks. Missing optional fields take their default (null);
    fields not in the schema are ignored. Raises ``KeyError`` for an unknown schema id and
    fastavro's ``ValueError`` for a record that does not match the schema.
    """
    if schemas is None:
        schemas = _default_schemas()
    schema = schemas.get(schema_id)
    if schema is None:
        raise KeyError(f"unknown Avro schema id {schema_id}")
    fo = io.BytesIO()
    fo.write(_HEADER.pack(MAGIC_BYTE, schema_id))
    fastavro.schemaless_writer(fo, schema, record)
    return fo.getvalue()
