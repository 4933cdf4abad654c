from datetime import UTC, datetime
from decimal import Decimal as D

from billing.proration import min_amount_true_up_cents, prorate_min_amount


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


FULL = (utc(2024, 2, 1), utc(2024, 3, 1))  # 29 days


def test_full_period_is_not_prorated():
    assert prorate_min_amount(10_000, *FULL, *FULL) == D(10_000)


def test_prorated_by_days():
    # started Feb 10: 20 of 29 days -> 10000 x 20 / 29 = 6896.5517...
    prorated = prorate_min_amount(10_000, utc(2024, 2, 10, 15, 30), FULL[1], *FULL)
    assert prorated.quantize(D("0.000001")) == D("6896.551724")


def test_prorated_in_customer_timezone():
    # New York, subscription started Feb 10 00:00 local (05:00Z); Feb = [Feb 1 05:00Z, Mar 1 05:00Z)
    # Feb 10..29 = 20 days of 29 -> 2900 x 20 / 29 = 2000
    prorated = prorate_min_amount(
        2_900,
        utc(2024, 2, 10, 5),
        utc(2024, 3, 1, 5),
        utc(2024, 2, 1, 5),
        utc(2024, 3, 1, 5),
        timezone="America/New_York",
    )
    assert prorated == D(2_000)


def test_true_up():
    prorated = D(10_000) * 20 / 29  # 6896.55... -> 6897 half-up
    assert min_amount_true_up_cents(5_000, 10_000, prorated) == 1_897  # 6897 - 5000
    assert min_amount_true_up_cents(8_000, 10_000, prorated) == 0  # already above the minimum
    assert min_amount_true_up_cents(6_897, 10_000, prorated) == 0


def test_true_up_rounds_half_up():
    assert min_amount_true_up_cents(0, 100, D("12.5")) == 13  # 12.5 -> 13, minus 0


def test_no_minimum():
    assert prorate_min_amount(0, *FULL, *FULL) == 0
    assert min_amount_true_up_cents(0, 0, D(0)) == 0
