"""ISO 4217 currency exponents and conversion of amounts to integer minor units (cents)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

from billing.decimals import CONTEXT, to_decimal


class UnknownCurrency(ValueError):
    """The code is not an active ISO 4217 currency with a defined minor unit."""


#: Active ISO 4217 codes (list one, 2025) with their minor-unit exponent. Codes whose minor unit is
#: "N.A." (precious metals, SDR, test and "no currency" codes) are deliberately absent.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2,
    "AWG": 2, "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0,
    "BMD": 2, "BND": 2, "BOB": 2, "BOV": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2,
    "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4,
    "CLP": 0, "CNY": 2, "COP": 2, "COU": 2, "CRC": 2, "CUC": 2, "CUP": 2, "CVE": 2,
    "CZK": 2, "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2, "ETB": 2,
    "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2,
    "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2,
    "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0,
    "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2,
    "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3, "MAD": 2,
    "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
    "MVR": 2, "MWK": 2, "MXN": 2, "MXV": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2,
    "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2,
    "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2,
    "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2,
    "SLE": 2, "SLL": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2,
    "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2,
    "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0, "USD": 2, "USN": 2, "UYI": 0, "UYU": 2,
    "UYW": 4, "UZS": 2, "VED": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0,
    "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
    "ZWL": 2,
}  # fmt: skip


def currency_exponent(code: str) -> int:
    """Number of decimals of the currency's minor unit (USD 2, JPY 0, KWD 3, CLF 4)."""
    try:
        return CURRENCY_EXPONENTS[code.upper()]
    except (KeyError, AttributeError):
        raise UnknownCurrency(f"unknown currency: {code!r}") from None


def subunit(currency: str) -> int:
    """How many minor units make one major unit: ``10 ** exponent`` (USD 100, JPY 1)."""
    return int(10 ** currency_exponent(currency))  # ``int ** int`` is typed Any (a float if < 0)


#: Largest ``amount_cents`` a fee can carry: Lago's ``fees.amount_cents`` is a ``bigint``
#: (db/structure.sql), and JSON answers carry 64-bit integers.
MAX_AMOUNT_CENTS = 2**63 - 1


def max_amount(currency: str | None = None) -> Decimal:
    """Largest price (in currency units) whose one unit still fits a fee's ``amount_cents``:
    ``MAX_AMOUNT_CENTS / subunit`` (USD 92233720368547758.07). Without a currency, the
    smallest of all (currencies with 4 decimals: 922337203685477.5807)."""
    exponent = max(CURRENCY_EXPONENTS.values()) if currency is None else currency_exponent(currency)
    return Decimal(MAX_AMOUNT_CENTS).scaleb(-exponent)


def amount_cents(amount: Decimal, currency: str) -> int:
    """Round ``amount`` half-up to the currency exponent and return it in minor units.

    Negative amounts give 0 (SPEC §7). EUR ``1.005`` -> 101, JPY ``100.5`` -> 101. An amount
    beyond what a fee can carry gives ``MAX_AMOUNT_CENTS`` (never an error).
    """
    exponent = currency_exponent(currency)
    value = to_decimal(amount)
    if value <= 0:
        return 0
    with localcontext(CONTEXT):
        if value >= max_amount(currency):
            return MAX_AMOUNT_CENTS
        rounded = value.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP)
        return min(int(rounded.scaleb(exponent)), MAX_AMOUNT_CENTS)


def cap_cents(cents: int) -> int:
    """A sum of fees' cents, capped at ``MAX_AMOUNT_CENTS`` (totals stay 64-bit integers)."""
    return min(cents, MAX_AMOUNT_CENTS)
