"""SPEC §1 canonical number → string rule and exact Decimal conversion."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.numbers import (
    MAX_EXPONENT,
    canonical_string,
    decimal_to_string,
    is_numeric_string,
    plain_decimal,
    to_decimal,
)

# value, canonical_string(value), to_decimal(value)
CASES = [
    (1, "1", Decimal("1")),
    (1.0, "1", Decimal("1")),
    (-1, "-1", Decimal("-1")),
    (0, "0", Decimal("0")),
    (1.5, "1.5", Decimal("1.5")),
    (0.1, "0.1", Decimal("0.1")),
    (-2.25, "-2.25", Decimal("-2.25")),
    ("1.50", "1.5", Decimal("1.5")),
    ("1.500000", "1.5", Decimal("1.5")),
    (1e6, "1000000", Decimal("1000000")),
    ("1e6", "1000000", Decimal("1000000")),
    ("1E6", "1000000", Decimal("1000000")),
    (1e16, "10000000000000000", Decimal("10000000000000000")),
    (1e-7, "0.0000001", Decimal("0.0000001")),
    ("1e-7", "0.0000001", Decimal("0.0000001")),
    (1.5e-10, "0.00000000015", Decimal("0.00000000015")),
    (-0.0, "0", Decimal("0")),
    ("-0", "0", Decimal("0")),
    ("-0.00", "0", Decimal("0")),
    ("0.0", "0", Decimal("0")),
    (10**30, "1" + "0" * 30, Decimal(10**30)),
    (-(10**30) - 7, "-1" + "0" * 29 + "7", Decimal(-(10**30) - 7)),
    ("123456789012345678901234567890.5", "123456789012345678901234567890.5",
     Decimal("123456789012345678901234567890.5")),
    (True, "true", None),
    (False, "false", None),
    ("abc", "abc", None),
    ("", "", None),
    (None, None, None),
    (Decimal("1.500"), "1.5", Decimal("1.5")),
    (Decimal("1E+3"), "1000", Decimal("1000")),
    (Decimal("-0.000"), "0", Decimal("0")),
    ("10", "10", Decimal("10")),
    ("0.5", "0.5", Decimal("0.5")),
    ("-3", "-3", Decimal("-3")),
    ("-03.10", "-3.1", Decimal("-3.1")),
    ("+2", "2", Decimal("2")),
    ("010", "10", Decimal("10")),
    ("000", "0", Decimal("0")),
    ("5.", "5", Decimal("5")),
    (".5", "0.5", Decimal("0.5")),
    ("+.5e-3", "0.0005", Decimal("0.0005")),
]

# Strings that are NOT numbers: canonical_string keeps them verbatim, to_decimal gives None.
NON_NUMERIC_STRINGS = [
    " 7 ", "7 ", " 7", "\t7", "1_000", "١٢", "²", "NaN", "nan", "Infinity", "-inf", "0x10",
    "1e", "e5", "--1", "1-2", ".", "-", "+", "2024-01-01", "1.2.3", "us-east-1", "1e999999999",
    "1e-999999999", "true",
]


@pytest.mark.parametrize(("value", "expected", "_dec"), CASES)
def test_canonical_string(value: object, expected: str | None, _dec: object) -> None:
    assert canonical_string(value) == expected


@pytest.mark.parametrize(("value", "_s", "expected"), CASES)
def test_to_decimal(value: object, _s: object, expected: Decimal | None) -> None:
    result = to_decimal(value)
    assert result == expected
    if expected is not None:
        assert isinstance(result, Decimal)
        # normalized: the same representation for equal values, plain and zero-free
        assert str(result).lower().count("e+") == 0
        assert decimal_to_string(result) == canonical_string(value)


def test_int_1_and_float_1_0_are_the_same_string() -> None:
    assert canonical_string(1) == canonical_string(1.0) == canonical_string("1.0") == "1"


@pytest.mark.parametrize("value", NON_NUMERIC_STRINGS)
def test_non_numeric_strings_stay_strings(value: str) -> None:
    assert canonical_string(value) == value
    assert to_decimal(value) is None
    assert not is_numeric_string(value)


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("Infinity"),
     Decimal("1E+999999"), [1], {"a": 1}, (1,), object()],
)
def test_non_finite_and_unsupported_are_none(value: object) -> None:
    assert canonical_string(value) is None
    assert to_decimal(value) is None


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (Decimal("1.500"), "1.5"),
        (Decimal("-0"), "0"),
        (Decimal("-0.0"), "0"),
        (Decimal("0E+5"), "0"),
        (Decimal("1E+6"), "1000000"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("100"), "100"),
        (Decimal("-12.3400"), "-12.34"),
    ],
)
def test_decimal_to_string(d: Decimal, expected: str) -> None:
    assert decimal_to_string(d) == expected


@pytest.mark.parametrize("d", [Decimal("NaN"), Decimal("-Infinity")])
def test_decimal_to_string_rejects_non_finite(d: Decimal) -> None:
    with pytest.raises(ValueError):
        decimal_to_string(d)


def test_exponent_bound() -> None:
    assert to_decimal(f"1e{MAX_EXPONENT}") == Decimal(10**MAX_EXPONENT)
    assert to_decimal(f"1e{MAX_EXPONENT + 1}") is None
    assert to_decimal(f"1e-{MAX_EXPONENT}") is not None
    assert to_decimal(f"1e-{MAX_EXPONENT + 1}") is None
    assert to_decimal(10 ** (MAX_EXPONENT + 1)) is None


def test_to_decimal_keeps_every_digit() -> None:
    s = "0.12345678901234567890123456789012345678901"
    assert to_decimal(s) == Decimal(s)
    assert canonical_string(s) == s


def test_int_and_str_subclasses() -> None:
    class MyInt(int):
        pass

    class MyStr(str):
        __slots__ = ()

    assert canonical_string(MyInt(3)) == "3"
    assert canonical_string(MyStr("1.50")) == "1.5"
    assert to_decimal(MyInt(3)) == Decimal(3)


def _plain_and_trimmed(s: str) -> bool:
    if "e" in s or "E" in s:
        return False
    return "." not in s or (not s.endswith("0") and not s.endswith("."))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_property_float(x: float) -> None:
    s = canonical_string(x)
    assert s is not None
    assert Decimal(s) == Decimal(repr(x))
    assert _plain_and_trimmed(s)
    assert s != "-0"
    assert to_decimal(x) == Decimal(repr(x))
    # a float and its canonical string are the same number everywhere
    assert canonical_string(s) == s
    assert to_decimal(s) == to_decimal(x)
    assert float(s) == x or (x == 0 and float(s) == 0)


@given(st.integers())
def test_property_int(x: int) -> None:
    s = canonical_string(x)
    assert s is not None
    assert Decimal(s) == Decimal(x)
    assert s == str(x)
    assert _plain_and_trimmed(s)
    assert canonical_string(s) == s
    assert to_decimal(s) == to_decimal(x) == Decimal(x)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_property_decimal_string(d: Decimal) -> None:
    # any finite decimal literal (str(d) may use exponent notation) canonicalizes losslessly
    s = canonical_string(str(d))
    assert s is not None
    if abs(d.adjusted()) <= MAX_EXPONENT - 30 or d.is_zero():
        assert Decimal(s) == d
        assert _plain_and_trimmed(s)
        assert to_decimal(str(d)) == d
        assert canonical_string(d) == s


@given(st.text(max_size=12))
def test_property_text_never_raises(s: str) -> None:
    c = canonical_string(s)
    d = to_decimal(s)
    assert isinstance(c, str)
    if d is None:
        assert c == s
    else:
        assert c == decimal_to_string(d)
        assert math.isfinite(float(d)) or abs(d.adjusted()) > 300


@given(
    st.one_of(
        st.from_regex(r"\A[0-9]{0,45}(\.[0-9]{0,45})?\Z"),
        st.from_regex(r"\A[-+]?0*[0-9]{0,3}\.?[0-9]{0,3}([eE][-+]?[0-9]{1,2})?\Z"),
        st.text(max_size=12),
    )
)
def test_plain_decimal_agrees_with_the_general_functions(s: str) -> None:
    got = plain_decimal(s)
    if got is None:
        return
    text, value = got
    assert text == canonical_string(s)
    expected = to_decimal(s)
    assert expected is not None
    assert value == expected and str(value) == str(expected)  # same digits and exponent


@pytest.mark.parametrize(
    ("s", "expected"),
    [("012.340", ("12.34", "12.34")), ("0.000", ("0", "0")), ("7", ("7", "7")),
     ("00", ("0", "0")), ("1.5", ("1.5", "1.5"))],
)
def test_plain_decimal_examples(s: str, expected: tuple[str, str]) -> None:
    text, value = plain_decimal(s)  # type: ignore[misc]
    assert (text, str(value)) == expected


@pytest.mark.parametrize("s", ["-1.5", "+1", "1e3", ".5", "5.", "", " 1", "1_0", "١", "1.2.3"])
def test_plain_decimal_leaves_other_strings_to_the_general_path(s: str) -> None:
    assert plain_decimal(s) is None
