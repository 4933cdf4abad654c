from decimal import Decimal as D

import pytest

from billing.currency import (
    CURRENCY_EXPONENTS,
    UnknownCurrency,
    amount_cents,
    currency_exponent,
    subunit,
)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("TND", 3),
        ("LYD", 3),
        ("IQD", 3),
        ("CLF", 4),
        ("UYW", 4),
        ("eur", 2),
    ],
)
def test_currency_exponent(code, exponent):
    assert currency_exponent(code) == exponent


def test_full_iso_list_is_loaded():
    # ISO 4217 list one: ~180 codes, of which 13 have no minor unit (XAU, XDR, XXX...).
    assert len(CURRENCY_EXPONENTS) >= 165
    assert {"VES", "ZWG", "XCG", "SLE", "MRU", "STN", "XOF", "XPF"} <= CURRENCY_EXPONENTS.keys()
    assert set(CURRENCY_EXPONENTS.values()) == {0, 2, 3, 4}


@pytest.mark.parametrize("code", ["XXX", "XAU", "ABC", "", "US"])
def test_unknown_currency_raises_value_error(code):
    with pytest.raises(UnknownCurrency):
        currency_exponent(code)
    assert issubclass(UnknownCurrency, ValueError)


def test_subunit():
    assert subunit("USD") == 100  # 10**2
    assert subunit("JPY") == 1  # 10**0
    assert subunit("KWD") == 1000  # 10**3
    assert subunit("CLF") == 10000  # 10**4


@pytest.mark.parametrize(
    ("amount", "currency", "cents"),
    [
        (D("1.005"), "EUR", 101),  # half-up at .005: 1.005 -> 1.01 -> 101 cents
        (D("2.675"), "EUR", 268),  # a float would give 2.67; Decimal half-up gives 2.68
        (D("1.004999"), "EUR", 100),  # below the half -> 1.00
        (D("12"), "USD", 1200),  # 12.00 x 100
        (D("100.5"), "JPY", 101),  # JPY has 0 decimals: 100.5 -> 101 yen
        (D("100.4"), "JPY", 100),
        (D("1.0005"), "BHD", 1001),  # 3 decimals: 1.0005 -> 1.001 -> 1001 fils
        (D("1.0004"), "KWD", 1000),
        (D("0.00005"), "CLF", 1),  # 4 decimals: 0.00005 -> 0.0001 -> 1
        (D("0.004"), "USD", 0),  # rounds to 0.00
        (D("-5"), "EUR", 0),  # negative -> 0
        (D("-0.005"), "EUR", 0),
        (D("0"), "JPY", 0),
    ],
)
def test_amount_cents(amount, currency, cents):
    assert amount_cents(amount, currency) == cents
    assert isinstance(amount_cents(amount, currency), int)


def test_amount_cents_keeps_large_amounts_exact():
    # 27 significant digits, just below what a fee can carry: 92233720368547758.06 USD
    amount = D("92233720368547758.0649999999")
    assert amount_cents(amount, "USD") == 9223372036854775806


def test_amount_cents_is_capped_at_what_a_fee_can_carry():
    # Lago's fees.amount_cents is a bigint (db/structure.sql): 2**63 - 1 at most, never an error
    assert amount_cents(D("123456789012345678901234567.123456789"), "USD") == 2**63 - 1
    assert amount_cents(D("1E+60"), "JPY") == 2**63 - 1


def test_amount_cents_unknown_currency():
    with pytest.raises(UnknownCurrency):
        amount_cents(D("1"), "ZZZ")
