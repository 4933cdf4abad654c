"""Pure hot-path event schemas: numbers, timestamps, usage-event validation (SPEC §1)."""

from schemas.errors import InvalidField
from schemas.event import (
    UsageEvent,
    event_to_json_dict,
    parse_event,
    partition_key,
    validate_event_payload,
)
from schemas.numbers import canonical_string, decimal_to_string, to_decimal
from schemas.timestamps import parse_timestamp_ms

__all__ = [
    "InvalidField",
    "UsageEvent",
    "canonical_string",
    "decimal_to_string",
    "event_to_json_dict",
    "parse_event",
    "parse_timestamp_ms",
    "partition_key",
    "to_decimal",
    "validate_event_payload",
]
