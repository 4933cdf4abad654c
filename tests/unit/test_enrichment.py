"""SPEC §3 enrichment: metric lookup, value extraction, subscription at event time, charge
filters, one row per charge, grouped_by. Expected values are worked out by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from enrichment.enricher import EnrichedRow, Rejection, enrich, grouped_by
from schemas.bounds import VALUE_OUT_OF_RANGE
from tests.unit.catalog_factory import (
    DAY_MS,
    HOUR_MS,
    START_MS,
    charge,
    charge_filter,
    event,
    index,
    metric,
    plan,
    subscription,
)

MISSING = object()


def rows_of(outcome: list[EnrichedRow] | Rejection) -> list[EnrichedRow]:
    assert isinstance(outcome, list), outcome
    return outcome


def code_of(outcome: list[EnrichedRow] | Rejection) -> str:
    assert isinstance(outcome, Rejection), outcome
    return outcome.code


# ------------------------------------------------------------------------------------------------
# 3.1 metric lookup


@pytest.mark.parametrize(
    "ev",
    [
        pytest.param(event({"amount": 1}, code="nope"), id="unknown-code"),
        pytest.param(event({"amount": 1}, code="API"), id="code-is-case-sensitive"),
    ],
)
def test_unknown_metric_is_rejected(ev: Any) -> None:
    assert code_of(enrich(ev, index())) == "unknown_metric"


def test_metric_of_another_organization_is_unknown() -> None:
    other_org = event({"amount": 1})._replace(organization_id="org_2")
    assert code_of(enrich(other_org, index())) == "unknown_metric"


def test_enriched_row_fields() -> None:
    ev = event({"amount": "2.50"})
    assert enrich(ev, index()) == [
        EnrichedRow(
            event=ev,
            subscription_id="s_1",
            plan_id="plan_basic",
            customer_id="c_1",
            aggregation_type="sum_agg",
            value="2.5",
            decimal_value=Decimal("2.5"),
            charge_id="ch_1",
            charge_filter_id="",
            grouped_by=(),
            charge_model="standard",
        )
    ]


# ------------------------------------------------------------------------------------------------
# 3.2 value extraction


@pytest.mark.parametrize(
    ("agg", "raw", "value", "decimal_value"),
    [
        pytest.param("count_agg", MISSING, "1", Decimal(1), id="count-no-field"),
        pytest.param("count_agg", "abc", "1", Decimal(1), id="count-ignores-property"),
        pytest.param("sum_agg", 3, "3", Decimal(3), id="sum-int"),
        pytest.param("sum_agg", -2, "-2", Decimal(-2), id="sum-negative-int"),
        pytest.param("sum_agg", 0, "0", Decimal(0), id="sum-zero"),
        pytest.param("sum_agg", 1.5, "1.5", Decimal("1.5"), id="sum-float"),
        pytest.param("sum_agg", 2.0, "2", Decimal(2), id="sum-integral-float"),
        pytest.param("sum_agg", "10", "10", Decimal(10), id="sum-numeric-string"),
        pytest.param("sum_agg", "1.50", "1.5", Decimal("1.5"), id="sum-string-trailing-zero"),
        pytest.param("sum_agg", 1e6, "1000000", Decimal(1000000), id="sum-float-1e6"),
        pytest.param("sum_agg", "1e6", "1000000", Decimal(1000000), id="sum-string-1e6"),
        pytest.param("sum_agg", 0.1, "0.1", Decimal("0.1"), id="sum-float-0.1-exact"),
        pytest.param("max_agg", "7", "7", Decimal(7), id="max-string"),
        pytest.param("latest_agg", -0.5, "-0.5", Decimal("-0.5"), id="latest-negative"),
        pytest.param("weighted_sum_agg", 4, "4", Decimal(4), id="weighted-sum-int"),
        pytest.param("unique_count_agg", "user_a", "user_a", None, id="unique-string"),
        pytest.param("unique_count_agg", " a ", " a ", None, id="unique-string-verbatim"),
        pytest.param("unique_count_agg", 42, "42", Decimal(42), id="unique-int"),
        pytest.param("unique_count_agg", 1.0, "1", Decimal(1), id="unique-integral-float"),
        pytest.param("unique_count_agg", "1.50", "1.5", Decimal("1.5"), id="unique-numeric-str"),
        pytest.param("unique_count_agg", True, "true", None, id="unique-bool"),
    ],
)
def test_value_extraction(agg: str, raw: object, value: str, decimal_value: Any) -> None:
    props = {} if raw is MISSING else {"amount": raw}
    (row,) = rows_of(enrich(event(props), index(metrics=[metric(agg=agg)])))
    assert (row.aggregation_type, row.value, row.decimal_value) == (agg, value, decimal_value)


@pytest.mark.parametrize("agg", ["sum_agg", "max_agg", "latest_agg", "weighted_sum_agg"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(MISSING, id="missing"),
        pytest.param(None, id="null"),
        pytest.param("abc", id="non-numeric-string"),
        pytest.param("", id="empty-string"),
        pytest.param(" 1", id="padded-number-string"),
        pytest.param("1,5", id="comma-decimal"),
        pytest.param(True, id="bool-true"),
        pytest.param(False, id="bool-false"),
    ],
)
def test_numeric_aggregation_rejects_non_numbers_never_zero(agg: str, raw: object) -> None:
    props = {"other": 1} if raw is MISSING else {"amount": raw}
    assert code_of(enrich(event(props), index(metrics=[metric(agg=agg)]))) == "invalid_value"


@pytest.mark.parametrize(
    "props",
    [pytest.param({}, id="missing"), pytest.param({"amount": None}, id="null")],
)
def test_unique_count_without_value_is_rejected(props: dict[str, object]) -> None:
    outcome = enrich(event(props), index(metrics=[metric(agg="unique_count_agg")]))
    assert code_of(outcome) == "invalid_value"


def test_invalid_value_is_checked_before_the_subscription() -> None:
    assert code_of(enrich(event({}), index(subscriptions=[]))) == "invalid_value"


# ------------------------------------------------------------------------------------------------
# 3.3 subscription at event time

JAN_31_NOON = START_MS + 30 * DAY_MS + 12 * HOUR_MS  # 2025-01-31T12:00:00Z
FEB_1 = START_MS + 31 * DAY_MS  # 2025-02-01T00:00:00Z
JAN_15 = START_MS + 14 * DAY_MS  # 2025-01-15T00:00:00Z

ONE_SUB = [subscription("s_1", started_at="2025-01-01T00:00:00Z")]
TERMINATED = [
    subscription("s_1", started_at="2025-01-01T00:00:00Z", terminated_at="2025-01-31T12:00:00Z")
]
OLD_THEN_NEW = [
    subscription("s_old", started_at="2025-01-01T00:00:00Z", terminated_at="2025-01-31T12:00:00Z"),
    subscription("s_new", started_at="2025-02-01T00:00:00Z"),
]
# declared newest first, to show the choice does not depend on declaration order
OVERLAPPING = [
    subscription("s_b", started_at="2025-01-15T00:00:00Z"),
    subscription("s_a", started_at="2025-01-01T00:00:00Z"),
]
OTHER_EXTERNAL_ID = [subscription("s_x", external_id="another_sub")]


@pytest.mark.parametrize(
    ("subs", "ts", "expected"),
    [
        pytest.param(ONE_SUB, START_MS - 1, None, id="one-ms-before-started_at"),
        pytest.param(ONE_SUB, START_MS, "s_1", id="exactly-at-started_at"),
        pytest.param(ONE_SUB, START_MS + 1, "s_1", id="just-after-started_at"),
        pytest.param(ONE_SUB, START_MS + 3650 * DAY_MS, "s_1", id="active-forever"),
        pytest.param(TERMINATED, JAN_31_NOON - 1, "s_1", id="before-terminated_at"),
        pytest.param(TERMINATED, JAN_31_NOON, "s_1", id="exactly-at-terminated_at"),
        pytest.param(TERMINATED, JAN_31_NOON + 1, None, id="one-ms-after-terminated_at"),
        pytest.param(OLD_THEN_NEW, START_MS + DAY_MS, "s_old", id="reused-id-old-period"),
        pytest.param(OLD_THEN_NEW, JAN_31_NOON, "s_old", id="reused-id-old-termination"),
        pytest.param(OLD_THEN_NEW, JAN_31_NOON + 1, None, id="reused-id-gap"),
        pytest.param(OLD_THEN_NEW, FEB_1 - 1, None, id="reused-id-gap-end"),
        pytest.param(OLD_THEN_NEW, FEB_1, "s_new", id="reused-id-new-start"),
        pytest.param(OLD_THEN_NEW, FEB_1 + DAY_MS, "s_new", id="reused-id-new-period"),
        pytest.param(OVERLAPPING, JAN_15 - 1, "s_a", id="overlap-only-first-started"),
        pytest.param(OVERLAPPING, JAN_15, "s_b", id="overlap-latest-started-wins"),
        pytest.param(OVERLAPPING, JAN_15 + DAY_MS, "s_b", id="overlap-latest-started-later"),
        pytest.param([], START_MS + DAY_MS, None, id="no-subscription-at-all"),
        pytest.param(OTHER_EXTERNAL_ID, START_MS + DAY_MS, None, id="other-external-id"),
    ],
)
def test_subscription_in_force_at_event_time(
    subs: list[Any], ts: int, expected: str | None
) -> None:
    outcome = enrich(event({"amount": 1}, ts=ts), index(subscriptions=subs))
    if expected is None:
        assert code_of(outcome) == "no_subscription"
    else:
        assert [r.subscription_id for r in rows_of(outcome)] == [expected]


# 2039-03-08T19:46:13.411Z = 2_183_226_373_411 ms; datetime.timestamp() * 1000 gives
# 2183226373410.9998, which int() truncates to ...410.
EDGE = "2039-03-08T19:46:13.411Z"
EDGE_MS = 2_183_226_373_411


@pytest.mark.parametrize(
    ("subs", "ts", "expected"),
    [
        pytest.param(
            [subscription("s_1", started_at="2039-01-01T00:00:00Z", terminated_at=EDGE)],
            EDGE_MS,
            "s_1",
            id="exactly-at-terminated_at-ms-edge",
        ),
        pytest.param(
            [subscription("s_1", started_at=EDGE)], EDGE_MS - 1, None, id="1ms-before-start-edge"
        ),
    ],
)
def test_subscription_bounds_are_exact_to_the_millisecond(
    subs: list[Any], ts: int, expected: str | None
) -> None:
    outcome = enrich(event({"amount": 1}, ts=ts), index(subscriptions=subs))
    got = outcome.code if isinstance(outcome, Rejection) else outcome[0].subscription_id
    assert got == (expected or "no_subscription")


# ------------------------------------------------------------------------------------------------
# 3.4 charge filters

REGION = charge_filter("f_region", {"region": ["eu"]})
REGION_TIER = charge_filter("f_region_tier", {"region": ["eu"], "tier": ["gold"]})
# the 1-key filter is declared first: specificity, not order, decides
SPECIFICITY = [REGION, REGION_TIER]
MULTI_VALUE = [charge_filter("f_eu_us", {"region": ["eu", "us"]})]
SIZE_ONE = [charge_filter("f_size", {"size": ["1"]})]
SIZE_ONE_NUMERIC = [charge_filter("f_size", {"size": [1.0]})]  # catalog value 1.0 → "1"
FLAG = [charge_filter("f_flag", {"flag": [True]})]


@pytest.mark.parametrize(
    ("filters", "props", "expected"),
    [
        pytest.param(SPECIFICITY, {"region": "eu", "tier": "gold"}, "f_region_tier",
                     id="two-keys-beat-one-key"),
        pytest.param(SPECIFICITY, {"region": "eu", "tier": "silver"}, "f_region",
                     id="two-key-filter-needs-every-key"),
        pytest.param(SPECIFICITY, {"region": "eu"}, "f_region", id="second-key-missing"),
        pytest.param(SPECIFICITY, {"tier": "gold"}, "", id="only-second-key-matches"),
        pytest.param(SPECIFICITY, {"region": "us", "tier": "gold"}, "", id="first-key-differs"),
        pytest.param(SPECIFICITY, {}, "", id="no-properties-default-bucket"),
        pytest.param(SPECIFICITY, {"region": "EU"}, "", id="values-are-case-sensitive"),
        pytest.param(SPECIFICITY, {"region": None}, "", id="null-property-matches-nothing"),
        pytest.param(MULTI_VALUE, {"region": "us"}, "f_eu_us", id="any-listed-value"),
        pytest.param(MULTI_VALUE, {"region": "apac"}, "", id="unlisted-value"),
        pytest.param(SIZE_ONE, {"size": 1}, "f_size", id="int-1-matches-string-1"),
        pytest.param(SIZE_ONE, {"size": 1.0}, "f_size", id="float-1.0-matches-string-1"),
        pytest.param(SIZE_ONE, {"size": "1"}, "f_size", id="string-1-matches"),
        pytest.param(SIZE_ONE, {"size": "1.0"}, "f_size", id="numeric-string-1.0-matches"),
        pytest.param(SIZE_ONE, {"size": 2}, "", id="int-2-does-not-match"),
        pytest.param(SIZE_ONE, {"size": True}, "", id="bool-is-not-1"),
        pytest.param(SIZE_ONE_NUMERIC, {"size": 1}, "f_size", id="catalog-value-1.0-matches-1"),
        pytest.param(FLAG, {"flag": True}, "f_flag", id="bool-matches-true"),
        pytest.param(FLAG, {"flag": "true"}, "f_flag", id="string-true-matches-true"),
        pytest.param(FLAG, {"flag": False}, "", id="false-is-not-true"),
    ],
)
def test_charge_filter_matching(
    filters: list[dict[str, Any]], props: dict[str, object], expected: str
) -> None:
    idx = index(plans=[plan(charge("ch_1", filters=filters))])
    (row,) = rows_of(enrich(event({"amount": 1, **props}), idx))
    assert (row.charge_id, row.charge_filter_id) == ("ch_1", expected)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        pytest.param(["f_region", "f_cloud"], "f_region", id="region-declared-first"),
        pytest.param(["f_cloud", "f_region"], "f_cloud", id="cloud-declared-first"),
    ],
)
def test_tie_between_filters_with_same_key_count_picks_first_declared_our_choice(
    declared: list[str], expected: str
) -> None:
    # SPEC §3.4 is silent on ties; we pick the first declared filter (stable ordering).
    by_id = {
        "f_region": charge_filter("f_region", {"region": ["eu"]}),
        "f_cloud": charge_filter("f_cloud", {"cloud": ["aws"]}),
    }
    idx = index(plans=[plan(charge("ch_1", filters=[by_id[f] for f in declared]))])
    (row,) = rows_of(enrich(event({"amount": 1, "region": "eu", "cloud": "aws"}), idx))
    assert row.charge_filter_id == expected


# ------------------------------------------------------------------------------------------------
# one row per charge


@pytest.mark.parametrize(
    ("charges", "expected"),
    [
        pytest.param([charge("ch_1")], [("ch_1", "")], id="one-charge"),
        pytest.param(
            [charge("ch_1"), charge("ch_2", filters=[REGION])],
            [("ch_1", ""), ("ch_2", "f_region")],
            id="two-charges-same-metric-two-rows",
        ),
        pytest.param(
            [charge("ch_1"), charge("ch_other", code="storage")],
            [("ch_1", "")],
            id="charge-on-other-metric-ignored",
        ),
        pytest.param([], [("", "")], id="plan-without-charges-one-unpriced-row"),
        pytest.param(
            [charge("ch_other", code="storage")],
            [("", "")],
            id="plan-without-charge-for-metric-one-unpriced-row",
        ),
    ],
)
def test_rows_per_charge(charges: list[dict[str, Any]], expected: list[tuple[str, str]]) -> None:
    idx = index(metrics=[metric(), metric("storage")], plans=[plan(*charges)])
    rows = rows_of(enrich(event({"amount": 1, "region": "eu"}), idx))
    assert [(r.charge_id, r.charge_filter_id) for r in rows] == expected
    assert all(r.subscription_id == "s_1" and r.value == "1" for r in rows)


def test_unpriced_row_has_no_groups() -> None:
    idx = index(plans=[plan()])
    (row,) = rows_of(enrich(event({"amount": 1, "region": "eu"}), idx))
    assert (row.charge_id, row.charge_filter_id, row.grouped_by, row.plan_id) == (
        "", "", (), "plan_basic"
    )


# ------------------------------------------------------------------------------------------------
# 3.5 grouped_by

GROUPED_REGION_CLOUD = [charge("ch_1", group_keys=["region", "cloud"])]
FILTER_WITH_KEYS = [
    charge(
        "ch_1",
        group_keys=["region"],
        filters=[
            charge_filter("f_gold", {"tier": ["gold"]}, group_keys=["cloud", "az"]),
            charge_filter("f_silver", {"tier": ["silver"]}),
        ],
    )
]


@pytest.mark.parametrize(
    ("charges", "props", "expected"),
    [
        pytest.param([charge("ch_1")], {"region": "eu"}, (), id="no-group-keys"),
        pytest.param(
            GROUPED_REGION_CLOUD,
            {"region": "eu", "cloud": "aws"},
            (("cloud", "aws"), ("region", "eu")),
            id="charge-keys-sorted-by-key",
        ),
        pytest.param(
            GROUPED_REGION_CLOUD,
            {"region": "eu"},
            (("cloud", ""), ("region", "eu")),
            id="missing-key-is-empty",
        ),
        pytest.param(
            GROUPED_REGION_CLOUD,
            {"region": None, "cloud": "aws"},
            (("cloud", "aws"), ("region", "")),
            id="null-is-empty",
        ),
        pytest.param(
            GROUPED_REGION_CLOUD,
            {"region": 2.0, "cloud": "1.50"},
            (("cloud", "1.5"), ("region", "2")),
            id="numbers-canonical",
        ),
        pytest.param(
            GROUPED_REGION_CLOUD,
            {"region": True, "cloud": 1e6},
            (("cloud", "1000000"), ("region", "true")),
            id="bool-and-1e6-canonical",
        ),
        pytest.param(
            FILTER_WITH_KEYS,
            {"tier": "gold", "region": "eu", "cloud": "aws", "az": "a"},
            (("az", "a"), ("cloud", "aws")),
            id="chosen-filter-keys-win",
        ),
        pytest.param(
            FILTER_WITH_KEYS,
            {"tier": "silver", "region": "eu", "cloud": "aws"},
            (("region", "eu"),),
            id="filter-without-keys-uses-charge-keys",
        ),
        pytest.param(
            FILTER_WITH_KEYS,
            {"tier": "bronze", "region": "eu", "cloud": "aws"},
            (("region", "eu"),),
            id="default-bucket-uses-charge-keys",
        ),
    ],
)
def test_grouped_by(
    charges: list[dict[str, Any]], props: dict[str, object], expected: tuple[Any, ...]
) -> None:
    (row,) = rows_of(enrich(event({"amount": 1, **props}), index(plans=[plan(*charges)])))
    assert row.grouped_by == expected


@pytest.mark.parametrize(
    ("keys", "props", "expected"),
    [
        pytest.param((), {"a": 1}, (), id="no-keys"),
        pytest.param(("b", "a"), {"a": 1, "b": "x"}, (("a", "1"), ("b", "x")), id="sorted"),
        pytest.param(("z",), {}, (("z", ""),), id="missing"),
        pytest.param(("n",), {"n": -0.0}, (("n", "0"),), id="negative-zero"),
    ],
)
def test_grouped_by_function(
    keys: tuple[str, ...], props: dict[str, object], expected: tuple[Any, ...]
) -> None:
    assert grouped_by(keys, props) == expected


# ------------------------------------------------------------------------------------------------
# catalog changed mid-stream: each event uses the index it is given


def test_metric_changed_mid_stream_each_event_uses_its_index() -> None:
    v1 = index(metrics=[metric(field_name="a")])
    v2 = index(metrics=[metric(field_name="b")])
    stream = [
        (event({"a": 1, "b": 20}, tx="t1"), v1, "1"),
        (event({"a": 2}, tx="t2"), v1, "2"),
        (event({"a": 3, "b": 30}, tx="t3"), v2, "30"),
        (event({"a": 4}, tx="t4"), v2, "invalid_value"),
        (event({"b": 50}, tx="t5"), v1, "invalid_value"),
    ]
    got = []
    for ev, idx, _ in stream:
        outcome = enrich(ev, idx)
        got.append(outcome.code if isinstance(outcome, Rejection) else outcome[0].value)
    assert got == [expected for _, _, expected in stream]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.1234567890125", Decimal("0.123456789012")),  # half-even to 12 places
        ("0.1234567890135", Decimal("0.123456789014")),
        ("99999999999999999999999999", Decimal("99999999999999999999999999")),  # 26 digits fit
    ],
    ids=["half-even-down", "half-even-up", "largest-integer-part"],
)
def test_values_are_held_to_decimal_38_12(raw, expected):
    rows = rows_of(enrich(event({"amount": raw}), index()))
    assert rows[0].decimal_value == expected


@pytest.mark.parametrize(
    "raw",
    [
        "1e26", "-1e26", Decimal("1E+400"), 10**26, "100000000000000000000000000.5",
        # rounds (half-even, 12 places) up to 10**26
        Decimal("99999999999999999999999999.9999999999995"),
        "99999999999999999999999999.99999999999951",
    ],
)
def test_values_beyond_decimal_38_12_are_dead_lettered_as_value_out_of_range(raw):
    outcome = enrich(event({"amount": raw}), index())
    assert code_of(outcome) == "value_out_of_range"
    assert outcome.code == VALUE_OUT_OF_RANGE  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # more digits than the default decimal context (28) once rounded: no InvalidOperation
        ("12345678901234567890.1234567890123", Decimal("12345678901234567890.123456789012")),
        (Decimal("99999999999999999999999999.99999999999949"),
         Decimal("99999999999999999999999999.999999999999")),
        (Decimal("-12345678.123456789012345"), Decimal("-12345678.123456789012")),
        (Decimal("12345678.123456789012"), Decimal("12345678.123456789012")),  # exact JSON number
    ],
)
def test_values_that_fit_once_rounded_are_kept(raw, expected):
    rows = rows_of(enrich(event({"amount": raw}), index()))
    assert rows[0].decimal_value == expected


def test_memoized_matches_give_every_event_its_own_answer() -> None:
    # One index for all events, so the per-charge match memo and the value memo are reused:
    # 1, 1.0, True and "1" are equal as Python keys but not as property values.
    filters = [charge_filter("f_size", {"size": ["1"]}, group_keys=["size"])]

    def fresh_index() -> Any:
        return index(plans=[plan(charge("ch_1", filters=filters, group_keys=["size"]))])

    shared = fresh_index()
    variants: list[object] = ["1", 1, True, 1.0, "1.0", 2, None, "1", True]
    for size in variants * 2:
        props = {"amount": 1, "size": size}
        want = enrich(event(props), fresh_index())
        got = enrich(event(props), shared)
        assert got == want, size
    # The value memo is process-wide, so the expected answers are written out here.
    for amount in [1, True, "1.0", 1.0, True, "1", 1] * 2:
        outcome = enrich(event({"amount": amount}), shared)
        if amount is True:
            assert code_of(outcome) == "invalid_value"
        else:
            assert [r.value for r in rows_of(outcome)] == ["1"], amount
