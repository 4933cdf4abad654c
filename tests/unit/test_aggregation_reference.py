"""Hand-worked examples for the SPEC §5 reference oracle (tests/reference.py)."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichment.enricher import EnrichedRow
from schemas.event import UsageEvent
from tests.reference import reference_event_values, reference_units

DAY_MS = 86_400_000
FROM = 1_717_200_000_000  # 2024-06-01T00:00:00Z
TO = FROM + 30 * DAY_MS  # 2024-07-01T00:00:00Z, exclusive: a 30-day period
DAYS = 30
DEFAULT = ("charge-1", "", ())

_counter = iter(range(10**9))


def row(
    ts: int,
    value: object = 1,
    *,
    charge: str = "charge-1",
    charge_filter: str = "",
    group: tuple[tuple[str, str], ...] = (),
    op: str | None = None,
    agg: str = "sum_agg",
    subscription: str = "sub-1",
) -> EnrichedRow:
    """An enriched row at ``ts`` (ms); numeric values also get a ``decimal_value``."""
    props: dict[str, object] = {"v": value}
    if op is not None:
        props["operation_type"] = op
    text = str(value)
    try:
        decimal_value: Decimal | None = Decimal(text)
    except ArithmeticError:
        decimal_value = None
    event = UsageEvent(
        organization_id="org-1",
        external_subscription_id="ext-sub-1",
        code="metric",
        transaction_id=f"tx-{next(_counter)}",
        timestamp_ms=ts,
        properties=props,
        precise_total_amount_cents=None,
    )
    return EnrichedRow(
        event=event,
        subscription_id=subscription,
        plan_id="plan-1",
        customer_id="cus-1",
        aggregation_type=agg,
        value=text,
        decimal_value=decimal_value,
        charge_id=charge,
        charge_filter_id=charge_filter,
        grouped_by=group,
    )


def units(rows, agg, *, recurring=False, period_from=FROM, period_to=TO, days=DAYS):
    return reference_units(
        rows,
        aggregation_type=agg,
        recurring=recurring,
        period_from_ms=period_from,
        period_to_ms=period_to,
        period_days=days,
    )


# ------------------------------------------------------------------------------------------------
# count / sum / max / latest


def test_count_window_includes_from_and_excludes_to():
    rows = [
        row(FROM - 1),  # before the window: out
        row(FROM),  # exactly at from: in
        row(FROM + 5 * DAY_MS),  # in
        row(TO - 1),  # last millisecond: in
        row(TO),  # exactly at to: out
    ]
    # 3 rows in [FROM, TO)
    assert units(rows, "count_agg") == {DEFAULT: Decimal(3)}


def test_count_key_absent_when_no_row_in_window():
    assert units([row(FROM - 1), row(TO)], "count_agg") == {}
    assert units([], "count_agg") == {}


def test_sum_allows_negatives():
    rows = [row(FROM, 10), row(FROM + 1, "-3.5"), row(TO - 1, "2.25"), row(TO, 100)]
    # 10 - 3.5 + 2.25 = 8.75 (the row at TO is out)
    assert units(rows, "sum_agg") == {DEFAULT: Decimal("8.75")}


def test_sum_can_be_negative():
    # 1 - 4 = -3
    assert units([row(FROM, 1), row(FROM + 1, -4)], "sum_agg") == {DEFAULT: Decimal(-3)}


def test_recurring_sum_ignores_lower_bound():
    rows = [
        row(FROM - 60 * DAY_MS, 100),  # two periods back: counted (recurring)
        row(FROM - 1, -30),  # counted
        row(FROM + DAY_MS, 5),  # counted
        row(TO, 1000),  # at to: never counted
    ]
    # non-recurring: only 5; recurring: 100 - 30 + 5 = 75
    assert units(rows, "sum_agg") == {DEFAULT: Decimal(5)}
    assert units(rows, "sum_agg", recurring=True) == {DEFAULT: Decimal(75)}


def test_recurring_sum_history_only_key_is_present():
    # only history before the window: recurring still reports it (100 - 100 = 0)
    rows = [row(FROM - 2, 100), row(FROM - 1, -100)]
    assert units(rows, "sum_agg", recurring=True) == {DEFAULT: Decimal(0)}
    assert units(rows, "sum_agg") == {}


def test_max_in_window():
    rows = [row(FROM - 1, 50), row(FROM, 3), row(FROM + 1, "7.5"), row(FROM + 2, -1), row(TO, 99)]
    # max(3, 7.5, -1) = 7.5 (50 and 99 are outside the window)
    assert units(rows, "max_agg") == {DEFAULT: Decimal("7.5")}


def test_max_of_negative_values_is_the_max_not_zero():
    # "0 if none" only applies with no event: max(-5, -2) = -2
    assert units([row(FROM, -5), row(FROM + 1, -2)], "max_agg") == {DEFAULT: Decimal(-2)}


def test_latest_takes_greatest_timestamp_not_input_order():
    rows = [row(FROM + 10, 4), row(FROM + 20, 9), row(FROM + 15, 1), row(TO, 77)]
    # greatest ts in window is FROM + 20 -> 9 (the row at TO is out)
    assert units(rows, "latest_agg") == {DEFAULT: Decimal(9)}


def test_latest_tie_takes_later_input_row():
    rows = [row(FROM + 10, 4), row(FROM + 10, 6), row(FROM + 5, 100)]
    # two rows at FROM + 10: the later in input order (6) wins
    assert units(rows, "latest_agg") == {DEFAULT: Decimal(6)}


def test_latest_negative_is_zero():
    rows = [row(FROM, 8), row(FROM + 1, "-2.5")]
    # latest value is -2.5 -> 0
    assert units(rows, "latest_agg") == {DEFAULT: Decimal(0)}


# ------------------------------------------------------------------------------------------------
# unique_count


def test_unique_count_add_remove_sequences():
    rows = [
        row(FROM + 1, "a", op="add", agg="unique_count_agg"),
        row(FROM + 2, "a", agg="unique_count_agg"),  # add (default) after add: no change
        row(FROM + 3, "a", op="remove", agg="unique_count_agg"),  # a retracted -> absent
        row(FROM + 4, "b", op="remove", agg="unique_count_agg"),  # no prior add -> absent
        row(FROM + 5, "c", agg="unique_count_agg"),  # c present
        row(FROM + 6, "c", op="remove", agg="unique_count_agg"),  # c absent
        row(FROM + 7, "c", op="add", agg="unique_count_agg"),  # c present again
        row(FROM + 8, "d", op="remove", agg="unique_count_agg"),  # remove with no add...
        row(FROM + 9, "d", op="remove", agg="unique_count_agg"),  # ...twice: absent
        row(FROM + 10, "d", agg="unique_count_agg"),  # then an add: present
    ]
    # present at the end: c, d -> 2
    assert units(rows, "unique_count_agg") == {DEFAULT: Decimal(2)}


def test_unique_count_walks_in_timestamp_order_not_input_order():
    rows = [
        row(FROM + 9, "a", op="remove", agg="unique_count_agg"),
        row(FROM + 1, "a", op="add", agg="unique_count_agg"),
    ]
    # by time: add a, then remove a -> 0
    assert units(rows, "unique_count_agg") == {DEFAULT: Decimal(0)}


def test_unique_count_timestamp_tie_uses_input_order():
    add, remove = "add", "remove"
    rows = [
        row(FROM + 1, "a", op=add, agg="unique_count_agg"),
        row(FROM + 1, "a", op=remove, agg="unique_count_agg"),
        row(FROM + 1, "b", op=remove, agg="unique_count_agg"),
        row(FROM + 1, "b", op=add, agg="unique_count_agg"),
    ]
    # same ms: a is added then removed (absent); b is removed (no-op) then added (present) -> 1
    assert units(rows, "unique_count_agg") == {DEFAULT: Decimal(1)}


def test_unique_count_non_recurring_window_and_recurring_history():
    rows = [
        row(FROM - DAY_MS, "a", agg="unique_count_agg"),  # before the window
        row(FROM - 1, "b", agg="unique_count_agg"),  # before the window
        row(FROM, "b", op="remove", agg="unique_count_agg"),  # at from: in the window
        row(FROM + DAY_MS, "c", agg="unique_count_agg"),  # in
        row(TO, "d", agg="unique_count_agg"),  # at to: never
    ]
    # non-recurring, window only: remove b (no prior add in window: no-op), add c -> {c} = 1
    assert units(rows, "unique_count_agg") == {DEFAULT: Decimal(1)}
    # recurring, all ts < TO: add a, add b, remove b, add c -> {a, c} = 2
    assert units(rows, "unique_count_agg", recurring=True) == {DEFAULT: Decimal(2)}


def test_unique_count_values_are_strings():
    rows = [row(FROM, "1", agg="unique_count_agg"), row(FROM + 1, "1.0", agg="unique_count_agg")]
    # "1" and "1.0" are different strings (enrichment canonicalises numbers before this)
    assert units(rows, "unique_count_agg") == {DEFAULT: Decimal(2)}


# ------------------------------------------------------------------------------------------------
# weighted_sum


def test_weighted_sum_level_10_for_10_of_30_days():
    rows = [
        row(FROM + 10 * DAY_MS, 10, agg="weighted_sum_agg"),  # level 0 -> 10 at day 10
        row(FROM + 20 * DAY_MS, -10, agg="weighted_sum_agg"),  # level 10 -> 0 at day 20
    ]
    # 0 × 10 d + 10 × 10 d + 0 × 10 d = 100 level-days; / 30 days = 3.333…
    # ceil at 20 decimals: 3.33333333333333333333|33… -> 3.33333333333333333334
    result = units(rows, "weighted_sum_agg")
    assert result == {DEFAULT: Decimal("3.33333333333333333334")}
    assert str(result[DEFAULT]) == "3.33333333333333333334"


def test_weighted_sum_non_recurring_ignores_history_and_to():
    rows = [
        row(FROM - DAY_MS, 1000, agg="weighted_sum_agg"),  # ignored (not recurring)
        row(FROM, 6, agg="weighted_sum_agg"),  # at from: level 6 for the whole period
        row(TO, 1000, agg="weighted_sum_agg"),  # at to: ignored
    ]
    # 6 × 30 d / 30 d = 6
    assert units(rows, "weighted_sum_agg") == {DEFAULT: Decimal("6.00000000000000000000")}


def test_weighted_sum_recurring_with_carried_level():
    rows = [
        row(FROM - 40 * DAY_MS, 8, agg="weighted_sum_agg"),  # carried
        row(FROM - 1, -3, agg="weighted_sum_agg"),  # carried: initial level 8 - 3 = 5
        row(FROM + 10 * DAY_MS, 3, agg="weighted_sum_agg"),  # level 5 -> 8 at day 10
        row(FROM + 25 * DAY_MS, -8, agg="weighted_sum_agg"),  # level 8 -> 0 at day 25
        row(TO, 1000, agg="weighted_sum_agg"),  # at to: ignored
    ]
    # 5 × 10 d + 8 × 15 d + 0 × 5 d = 50 + 120 = 170 level-days; / 30 d = 5.6666…
    # ceil at 20 decimals -> 5.66666666666666666667
    assert units(rows, "weighted_sum_agg", recurring=True) == {
        DEFAULT: Decimal("5.66666666666666666667")
    }
    # the same rows, not recurring: 3 × 15 d + (-5) × 5 d = 45 - 25 = 20; / 30 = 0.666…67
    assert units(rows, "weighted_sum_agg") == {DEFAULT: Decimal("0.66666666666666666667")}


def test_weighted_sum_recurring_carried_only():
    rows = [row(FROM - 1, 5, agg="weighted_sum_agg")]
    # level 5 for the whole 30 days: 5 × 30 / 30 = 5
    assert units(rows, "weighted_sum_agg", recurring=True) == {DEFAULT: Decimal(5)}


def test_weighted_sum_millisecond_precision():
    rows = [row(FROM + DAY_MS - 1, 1, agg="weighted_sum_agg")]
    # 1-day period; level 1 for the last 1 ms = 0.001 s; 0.001 / 86400 = 1.1574074…e-8
    # 0.00000001157407407407|407… ceil -> 0.00000001157407407408
    result = units(rows, "weighted_sum_agg", period_to=FROM + DAY_MS, days=1)
    assert result == {DEFAULT: Decimal("0.00000001157407407408")}


def test_weighted_sum_negative_level_ceils_toward_positive():
    rows = [row(FROM + 20 * DAY_MS, -1, agg="weighted_sum_agg")]
    # -1 × 10 d / 30 d = -0.3333…; ceiling (toward +inf) -> -0.33333333333333333333
    assert units(rows, "weighted_sum_agg") == {DEFAULT: Decimal("-0.33333333333333333333")}


def test_weighted_sum_divides_by_period_days_not_window_length():
    # a 31-day month: level 31 from day 0 for 31 days -> 31 × 31 / 31 = 31
    rows = [row(FROM, 31, agg="weighted_sum_agg")]
    assert units(rows, "weighted_sum_agg", period_to=FROM + 31 * DAY_MS, days=31) == {
        DEFAULT: Decimal(31)
    }
    # a window clamped to 15 days (termination) still divides by the caller's period_days (30):
    # 31 × 15 / 30 = 15.5
    assert units(rows, "weighted_sum_agg", period_to=FROM + 15 * DAY_MS, days=30) == {
        DEFAULT: Decimal("15.5")
    }


# ------------------------------------------------------------------------------------------------
# keys


def test_grouping_by_charge_filter_and_group():
    g_eu = (("region", "eu"),)
    g_us = (("region", "us"),)
    rows = [
        row(FROM, 1, charge="c1"),
        row(FROM + 1, 2, charge="c1"),
        row(FROM + 2, 4, charge="c1", charge_filter="f1"),
        row(FROM + 3, 8, charge="c1", charge_filter="f1", group=g_eu),
        row(FROM + 4, 16, charge="c1", charge_filter="f1", group=g_us),
        row(FROM + 5, 32, charge="c1", charge_filter="f1", group=g_us),
        row(FROM + 6, 64, charge="c2"),
        row(TO, 128, charge="c3"),  # outside the window: no key
    ]
    assert units(rows, "sum_agg") == {
        ("c1", "", ()): Decimal(3),  # 1 + 2
        ("c1", "f1", ()): Decimal(4),
        ("c1", "f1", g_eu): Decimal(8),
        ("c1", "f1", g_us): Decimal(48),  # 16 + 32
        ("c2", "", ()): Decimal(64),
    }
    assert units(rows, "count_agg") == {
        ("c1", "", ()): Decimal(2),
        ("c1", "f1", ()): Decimal(1),
        ("c1", "f1", g_eu): Decimal(1),
        ("c1", "f1", g_us): Decimal(2),
        ("c2", "", ()): Decimal(1),
    }


def test_unique_count_is_per_key():
    rows = [
        row(FROM, "a", charge="c1", agg="unique_count_agg"),
        row(FROM + 1, "a", charge="c2", op="remove", agg="unique_count_agg"),
    ]
    # the remove on c2 does not retract c1's "a"
    assert units(rows, "unique_count_agg") == {
        ("c1", "", ()): Decimal(1),
        ("c2", "", ()): Decimal(0),
    }


# ------------------------------------------------------------------------------------------------
# per-event values (percentage charge model)


def test_event_values_timestamp_order_ties_in_input_order():
    rows = [
        row(FROM + 5, 3),
        row(FROM - 1, 99),  # out
        row(FROM, 1),  # at from: in
        row(FROM + 5, 4),  # tie with the first row: after it
        row(TO, 99),  # out
        row(FROM + 2, 2, charge="c2"),
    ]
    assert reference_event_values(rows, FROM, TO) == {
        DEFAULT: (Decimal(1), Decimal(3), Decimal(4)),
        ("c2", "", ()): (Decimal(2),),
    }


# ------------------------------------------------------------------------------------------------
# misuse


def test_rows_of_several_subscriptions_are_rejected():
    rows = [row(FROM, 1), row(FROM, 1, subscription="sub-2")]
    with pytest.raises(ValueError, match="several subscriptions"):
        units(rows, "sum_agg")
    with pytest.raises(ValueError, match="several subscriptions"):
        reference_event_values(rows, FROM, TO)


@pytest.mark.parametrize("agg", ["count_agg", "max_agg", "latest_agg"])
def test_recurring_is_rejected_where_the_catalog_forbids_it(agg):
    with pytest.raises(ValueError, match="cannot be recurring"):
        units([row(FROM, 1)], agg, recurring=True)


def test_unknown_type_and_inverted_window_are_rejected():
    with pytest.raises(ValueError, match="unknown aggregation type"):
        units([], "avg_agg")
    with pytest.raises(ValueError, match="empty window"):
        units([], "sum_agg", period_from=TO, period_to=FROM)


def test_numeric_type_needs_decimal_value():
    with pytest.raises(ValueError, match="no decimal_value"):
        units([row(FROM, "abc")], "sum_agg")


# ------------------------------------------------------------------------------------------------
# properties: the walk against closed forms


values_st = st.decimals(min_value=-(10**6), max_value=10**6, places=12, allow_nan=False)
offsets_st = st.integers(min_value=-5 * DAY_MS, max_value=35 * DAY_MS)
events_st = st.lists(st.tuples(offsets_st, values_st), max_size=25)


@settings(max_examples=200)
@given(events=events_st, recurring=st.booleans())
def test_weighted_sum_walk_matches_closed_form(events, recurring):
    rows = [row(FROM + offset, value, agg="weighted_sum_agg") for offset, value in events]
    result = units(rows, "weighted_sum_agg", recurring=recurring)
    # closed form, in exact fractions: [initial × (to − from) + Σ v_i × (to − t_i)] / (days × 86400)
    initial = sum((Fraction(v) for o, v in events if recurring and o < 0), Fraction(0))
    inside = [(o, v) for o, v in events if 0 <= o < TO - FROM]
    level_ms = initial * (TO - FROM) + sum(
        (Fraction(v) * (TO - FROM - o) for o, v in inside), Fraction(0)
    )
    expected = math.ceil(level_ms / (DAYS * DAY_MS) * 10**20)
    relevant = [o for o, _ in events if o < TO - FROM and (recurring or o >= 0)]
    if relevant:
        assert result == {DEFAULT: Decimal(expected).scaleb(-20)}
    else:
        assert result == {}


@settings(max_examples=200)
@given(events=events_st, split=offsets_st)
def test_sum_and_count_split_additively(events, split):
    lo, mid, hi = FROM - 5 * DAY_MS, FROM + split, FROM + 35 * DAY_MS
    rows = [row(FROM + offset, value) for offset, value in events]

    def total(agg, a, b):
        return units(rows, agg, period_from=a, period_to=b).get(DEFAULT, Decimal(0))

    for agg in ("sum_agg", "count_agg"):
        assert total(agg, lo, hi) == total(agg, lo, mid) + total(agg, mid, hi)
    window = [v for o, v in events if 0 <= o < TO - FROM]
    values = reference_event_values(rows, FROM, TO).get(DEFAULT, ())
    assert sorted(values) == sorted(window)
    assert total("sum_agg", FROM, TO) == sum(window, Decimal(0))
    assert total("count_agg", FROM, TO) == len(window)
    if window:
        assert total("max_agg", FROM, TO) == max(window)


@settings(max_examples=200)
@given(
    ops=st.lists(
        st.tuples(offsets_st, st.sampled_from("abc"), st.sampled_from(["add", "remove", None])),
        max_size=25,
    ),
    recurring=st.booleans(),
)
def test_unique_count_equals_last_operation_per_value(ops, recurring):
    rows = [row(FROM + o, v, op=op, agg="unique_count_agg") for o, v, op in ops]
    kept = [(o, v, op) for o, v, op in ops if o < TO - FROM and (recurring or o >= 0)]
    last: dict[str, str | None] = {}
    for _, v, op in sorted(kept, key=lambda item: item[0]):  # stable: ties keep input order
        last[v] = op
    expected = sum(1 for op in last.values() if op != "remove")
    result = units(rows, "unique_count_agg", recurring=recurring)
    assert result == ({DEFAULT: Decimal(expected)} if kept else {})
