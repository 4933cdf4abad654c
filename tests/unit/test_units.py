"""Units per aggregation type from stored states (hand-worked)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggregation.units import Period, units_for
from aggregation.usage_aggregate import UsageAggregate

DAY = 86_400_000
NOV = Period(0, 30 * DAY, 30)


def state(count=0, total="0", mx=None, latest=None, vt="0"):
    return UsageAggregate("c", "", (), "x", count, Decimal(total),
                          None if mx is None else Decimal(mx),
                          None if latest is None else Decimal(latest), Decimal(0), Decimal(vt))


@pytest.mark.parametrize(
    ("agg", "recurring", "window", "before", "unique", "expected"),
    [
        ("count_agg", False, state(count=7), None, None, "7"),
        ("count_agg", False, None, None, None, "0"),
        ("sum_agg", False, state(total="-2.5"), state(total="100"), None, "-2.5"),
        ("sum_agg", True, state(total="-2.5"), state(total="100"), None, "97.5"),
        ("max_agg", False, state(mx="-3"), None, None, "-3"),
        ("max_agg", False, None, None, None, "0"),
        ("latest_agg", False, state(latest="-4"), None, None, "0"),
        ("latest_agg", False, state(latest="4.25"), None, None, "4.25"),
        ("unique_count_agg", False, state(count=9), None, 3, "3"),
        # level 5 for the whole month (carried) → 5 × 30 days / 30 days
        ("weighted_sum_agg", True, None, state(total="5"), None, "5"),
        # +6 at day 15 until day 30: 6 × 15 / 30 = 3
        ("weighted_sum_agg", False, state(total="6", vt=str(6 * 15 * 86_400)), None, None, "3"),
    ],
    ids=["count", "count-none", "sum", "sum-recurring", "max-negative", "max-none",
         "latest-negative", "latest", "unique", "weighted-carried", "weighted-step"],
)
def test_units_for(agg, recurring, window, before, unique, expected):
    units = units_for(agg, recurring=recurring, window=window, before=before,
                      unique_present=unique, period=NOV)
    assert units == Decimal(expected)


def test_weighted_sum_ceils_at_twenty_decimals():
    # +1 at day 20 → 1 × 10 days / 30 days = 0.333… → ceil → …34
    units = units_for("weighted_sum_agg", recurring=False,
                      window=state(total="1", vt=str(20 * 86_400)), before=None,
                      unique_present=None, period=NOV)
    assert units == Decimal("0.33333333333333333334")


def test_unknown_type_is_an_error():
    with pytest.raises(ValueError):
        units_for("avg_agg", recurring=False, window=None, before=None, unique_present=None,
                  period=NOV)


def test_a_recurring_sum_of_large_stored_sums_keeps_every_digit():
    """Issue 16: sums are Decimal(76, 12); adding the carried total must not round to 28
    digits (the default decimal context)."""
    big = "99999999999999999999999999.123456789012"
    total = units_for("sum_agg", recurring=True, window=state(total=big),
                      before=state(total=big), unique_present=None, period=NOV)
    assert total == Decimal("199999999999999999999999998.246913578024")
