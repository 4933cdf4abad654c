"""SPEC §1 event timestamps: Unix seconds or RFC 3339 → ms UTC; missing → ingestion time."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from schemas.bounds import MAX_INSTANT_MS
from schemas.errors import InvalidField
from schemas.timestamps import MAX_TIMESTAMP_MS, format_timestamp_seconds, parse_timestamp_ms

NOW = 1_763_719_200_000  # 2025-11-21T10:00:00Z

def _exact_floor_ms(x: float) -> int:
    return int((Decimal(repr(x)) * 1000).to_integral_value(rounding=decimal.ROUND_FLOOR))


VALID = [
    (None, NOW),
    (1700000000, 1700000000000),
    (0, 0),
    (1700000000.5, 1700000000500),
    (1700000000.1234, 1700000000123),  # floor to the millisecond
    (1700000000.123, 1700000000123),  # exact repr digits, not int(x * 1000) == …122
    (1700000000.9999, 1700000000999),  # never rounded up into the next millisecond
    (1.7e9, 1700000000000),
    (-0.0, 0),
    (Decimal("1700000000.1239"), 1700000000123),
    ("1700000000", 1700000000000),
    ("1700000000.1234", 1700000000123),
    ("1700000000.123", 1700000000123),
    ("1700000000.", 1700000000000),
    ("1.7e9", 1700000000000),
    ("0001700000000.5", 1700000000500),
    ("1700000000.123999999999999999999999999999999", 1700000000123),
    ("2026-11-21T10:00:00Z", 1795255200000),
    ("2026-11-21T10:00:00+00:00", 1795255200000),
    ("2026-11-21T12:00:00+02:00", 1795255200000),
    ("2026-11-21T05:30:00-04:30", 1795255200000),
    ("2026-11-21T10:00:00.5Z", 1795255200500),
    ("2026-11-21T10:00:00.123Z", 1795255200123),
    ("2026-11-21T10:00:00.123999999+00:00", 1795255200123),
    ("2026-11-21t10:00:00z", 1795255200000),
    ("2026-11-21 10:00:00Z", 1795255200000),
    ("1970-01-01T00:00:00Z", 0),
    ("2099-12-31T23:59:59.999Z", MAX_TIMESTAMP_MS),
    ("2100-01-01T00:59:59.999+01:00", MAX_TIMESTAMP_MS),
    (4_102_444_799, 4_102_444_799_000),
    (4_102_444_799.999, MAX_TIMESTAMP_MS),
    (Decimal("4102444799.9999999999999999999999999999999999999"), MAX_TIMESTAMP_MS),
    ("4102444799.999999", MAX_TIMESTAMP_MS),
    # exact JSON numbers (schemas.exact_json): every digit counts, floor to the millisecond
    (Decimal("1700000000.1229999999999999999999"), 1700000000122),  # a float would say …123
    (Decimal("1700000000.123"), 1700000000123),
    (Decimal("1.7E+9"), 1700000000000),
    (Decimal("-0.000"), 0),
    (Decimal("1E-999999999"), 0),
]

# value, expected error code
INVALID = [
    (True, "invalid_type"),
    (False, "invalid_type"),
    ([1700000000], "invalid_type"),
    ({"seconds": 1}, "invalid_type"),
    ("", "invalid_format"),
    ("abc", "invalid_format"),
    (" 1700000000", "invalid_format"),
    ("1700000000 ", "invalid_format"),
    ("1_700_000_000", "invalid_format"),
    ("NaN", "invalid_format"),
    (float("nan"), "invalid_format"),
    (float("inf"), "invalid_format"),
    (Decimal("NaN"), "invalid_format"),
    (Decimal("Infinity"), "invalid_format"),
    # well-formed, outside [1970-01-01, 2100-01-01) (schemas.bounds): the store cannot hold it
    (-1, "value_is_out_of_range"),
    (-0.001, "value_is_out_of_range"),
    (-1e-300, "value_is_out_of_range"),
    ("-1", "value_is_out_of_range"),
    ("-0.0001", "value_is_out_of_range"),
    (Decimal("-0.0001"), "value_is_out_of_range"),
    (1e300, "value_is_out_of_range"),
    (10**20, "value_is_out_of_range"),
    (10**4000, "value_is_out_of_range"),
    (Decimal("1E+400"), "value_is_out_of_range"),
    (Decimal("1E+999999999"), "value_is_out_of_range"),
    (4_102_444_800, "value_is_out_of_range"),  # 2100-01-01T00:00:00Z: the first instant refused
    (4_102_444_800.0, "value_is_out_of_range"),
    ("4102444800", "value_is_out_of_range"),
    (Decimal("4102444800.000"), "value_is_out_of_range"),
    ("2100-01-01T00:00:00Z", "value_is_out_of_range"),
    ("2100-01-01T01:00:00+01:00", "value_is_out_of_range"),
    ("2106-02-07T06:28:16Z", "value_is_out_of_range"),  # where 32-bit DateTime wraps
    ("9999-12-31T23:59:59.999Z", "value_is_out_of_range"),
    ("2026-11-21", "invalid_format"),  # date without time
    ("2026-11-21T10:00:00", "invalid_format"),  # naive: rejected, not guessed UTC
    ("2026-11-21T10:00:00.123", "invalid_format"),
    ("2026-11-21T10:00Z", "invalid_format"),  # seconds are required
    ("20261121T100000Z", "invalid_format"),  # ISO 8601 basic format is not RFC 3339
    ("2026-11-21T10:00:00+0200", "invalid_format"),
    ("2026-11-21T10:00:00,5Z", "invalid_format"),
    ("2026-11-21T10:00:00.Z", "invalid_format"),
    ("2026-11-21T10:00:60Z", "invalid_format"),
    ("2026-13-21T10:00:00Z", "invalid_format"),
    ("2026-11-21T10:00:00+25:00", "invalid_format"),
    ("1969-12-31T23:59:59Z", "value_is_out_of_range"),
    ("1969-12-31T23:59:59.999Z", "value_is_out_of_range"),
    ("9999-12-31T23:59:59-01:00", "value_is_out_of_range"),
    ("0001-01-01T00:00:00+01:00", "value_is_out_of_range"),
    ("2026-11-21 10:00:00 UTC", "invalid_format"),  # Lago: Time.current.to_s is invalid
]


@pytest.mark.parametrize(("value", "expected"), VALID)
def test_valid_timestamps(value: object, expected: int) -> None:
    assert parse_timestamp_ms(value, now_ms=NOW) == expected


@pytest.mark.parametrize(("value", "code"), INVALID)
def test_invalid_timestamps(value: object, code: str) -> None:
    with pytest.raises(InvalidField) as info:
        parse_timestamp_ms(value, now_ms=NOW)
    assert info.value.field == "timestamp"
    assert info.value.code == code


def test_missing_timestamp_is_ingestion_time() -> None:
    assert parse_timestamp_ms(None, now_ms=42) == 42


def test_immune_to_thread_decimal_context() -> None:
    with decimal.localcontext() as ctx:
        ctx.prec = 5
        assert parse_timestamp_ms("1700000000.1239", now_ms=0) == 1700000000123
        assert parse_timestamp_ms("1.7000000001239e9", now_ms=0) == 1700000000123


@pytest.mark.parametrize(
    ("ms", "expected"),
    [(0, "0.000"), (1700000000123, "1700000000.123"), (1700000000005, "1700000000.005"),
     (1700000000000, "1700000000.000")],
)
def test_format_timestamp_seconds(ms: int, expected: str) -> None:
    assert format_timestamp_seconds(ms) == expected
    assert parse_timestamp_ms(expected, now_ms=NOW) == ms


def test_the_range_is_the_one_of_schemas_bounds() -> None:
    assert MAX_TIMESTAMP_MS == MAX_INSTANT_MS - 1 == 4_102_444_799_999


@given(st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS))
def test_property_seconds_string_round_trip(ms: int) -> None:
    assert parse_timestamp_ms(format_timestamp_seconds(ms), now_ms=NOW) == ms
    assert parse_timestamp_ms(Decimal(format_timestamp_seconds(ms)), now_ms=NOW) == ms


@given(st.decimals(min_value=0, max_value=Decimal(MAX_INSTANT_MS) / 1000, allow_nan=False,
                   allow_infinity=False))
# d x 1000 in the default 28 digits rounds these up to the next millisecond
@example(Decimal("1025611199.999999999999999999501333351859416970337147"))
@example(Decimal("4102444799.9999999999999999995013333518594169703371468"))
def test_property_decimal_seconds_floor_exactly(d: Decimal) -> None:
    exact = decimal.Context(prec=100)
    expected = int(exact.multiply(d, 1000).to_integral_value(rounding=decimal.ROUND_FLOOR,
                                                              context=exact))
    if expected >= MAX_INSTANT_MS:
        with pytest.raises(InvalidField) as info:
            parse_timestamp_ms(d, now_ms=NOW)
        assert info.value.code == "value_is_out_of_range"
    else:
        assert parse_timestamp_ms(d, now_ms=NOW) == expected


@given(st.floats(min_value=0, max_value=MAX_TIMESTAMP_MS / 1000))
def test_property_float_seconds_floor(x: float) -> None:
    assert parse_timestamp_ms(x, now_ms=NOW) == _exact_floor_ms(x)


@given(
    st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS),
    st.sampled_from([0.0, 1e-7, 1e-5, 1e-4, 4e-4, 5e-4, 9e-4, 9.99e-4, 9.9999e-4]),
)
def test_property_float_seconds_near_millisecond_boundaries(ms: int, delta: float) -> None:
    x = ms / 1000 + delta
    expected = _exact_floor_ms(x)
    if expected > MAX_TIMESTAMP_MS:
        with pytest.raises(InvalidField) as info:
            parse_timestamp_ms(x, now_ms=NOW)
        assert info.value.code == "value_is_out_of_range"
    else:
        assert parse_timestamp_ms(x, now_ms=NOW) == expected


@pytest.mark.parametrize(
    "x", [1700000000.1230001, 1700000000.1229999, 1763719200.1234567, 4102444799.999,
          0.001, 0.0009999, 1e-300, 5e-324],
)
def test_float_seconds_exact_floor(x: float) -> None:
    assert parse_timestamp_ms(x, now_ms=NOW) == _exact_floor_ms(x)
