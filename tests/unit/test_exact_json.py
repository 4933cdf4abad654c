"""schemas.exact_json: JSON numbers exact from the first byte (issue 16, finding 5)."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import exact_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"12345678.123456789012", Decimal("12345678.123456789012")),  # orjson: …12345679
        (b"1180591620717411303424", 2**70),  # orjson: 1.1805916207174113e+21
        (b"-1180591620717411303424", -(2**70)),
        (b"1e400", Decimal("1E+400")),  # orjson: not JSON
        (b"1.50", Decimal("1.50")),
        (b"-0.0", Decimal("-0.0")),
        (b"0", 0),
        (b'{"a":[1,2.5,true,null,"x"],"a":{"b":0.1}}', {"a": {"b": Decimal("0.1")}}),
    ],
)
def test_numbers_are_int_or_exact_decimal(text: bytes, expected: object) -> None:
    got = exact_json.loads(text)
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(expected, Decimal):
        assert str(got) == str(expected)  # every digit, trailing zeros included


@pytest.mark.parametrize(
    "text",
    [b"", b"{", b"NaN", b"[1] 2", b'"\xff"', b'"\\ud800"', b"01", b"[" * 3000 + b"]" * 3000,
     b"1e9999999999999999999", b"1" + b"0" * 4400],
)
def test_what_cannot_be_read_raises_one_error_type(text: bytes) -> None:
    with pytest.raises(exact_json.JSONDecodeError):
        exact_json.loads(text)
    assert issubclass(exact_json.JSONDecodeError, ValueError)


def test_dumps_writes_every_digit_and_integers_beyond_64_bits() -> None:
    value = {"d": Decimal("12345678.123456789012"), "e": Decimal("1E+400"), "big": 2**70,
             "nested": [{"n": -(2**64)}], "f": 0.5, "s": "x"}
    text = exact_json.dumps(value)
    assert text == (b'{"d":12345678.123456789012,"e":1E+400,"big":1180591620717411303424,'
                    b'"nested":[{"n":-18446744073709551616}],"f":0.5,"s":"x"}')
    assert exact_json.loads(text) == {**value, "f": Decimal("0.5")}
    assert exact_json.dumps({"b": 1}, option=orjson.OPT_SORT_KEYS) == b'{"b":1}'
    with pytest.raises(TypeError):
        exact_json.dumps({"nan": Decimal("NaN")})
    with pytest.raises(TypeError):
        exact_json.dumps({"x": object()})


def test_texts_and_jsonable_for_plain_orjson_writers() -> None:
    rows = [{"a": "x"}, {"d": Decimal("0.10")}, {"big": 2**64}]
    assert exact_json.texts(rows) == ['{"a":"x"}', '{"d":0.10}', '{"big":18446744073709551616}']
    assert exact_json.texts(iter(rows[:2])) == ['{"a":"x"}', '{"d":0.10}']
    plain = orjson.dumps(exact_json.jsonable({"l": [Decimal("1.5"), 2**70], "i": 3}))
    assert plain == b'{"l":[1.5,1180591620717411303424],"i":3}'
    assert exact_json.has_wide_int({"a": [1, {"b": 2**64}]})
    assert not exact_json.has_wide_int({"a": [2**64 - 1, -(2**63), Decimal("1E+400"), "9" * 30]})


@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
              st.decimals(allow_nan=False, allow_infinity=False)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=4), children, max_size=3)),
    max_leaves=8,
))
def test_property_round_trip_is_exact(value: object) -> None:
    again = exact_json.loads(exact_json.dumps(value))
    assert again == value
    assert repr(again) == repr(_int_for_integral_decimal(value))  # same types, same digits


def _int_for_integral_decimal(value: object) -> object:
    """A Decimal with no fraction and no exponent (``Decimal("5")``) is written ``5``, which
    reads back as the int 5: same value, the one type change of a round trip."""
    if isinstance(value, Decimal) and value.as_tuple().exponent == 0:
        return int(value)
    if isinstance(value, dict):
        return {k: _int_for_integral_decimal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_int_for_integral_decimal(v) for v in value]
    return value
