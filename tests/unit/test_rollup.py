"""15-minute pre-aggregation (aggregation/rollup.py) and SPEC §5 units (usage_aggregate.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from aggregation.rollup import BUCKET_MS, RollupKey, RollupState, bucket_start_ms, rollup
from enrichment.enricher import EnrichedRow
from schemas.numbers import to_decimal
from tests.unit.catalog_factory import ORG, START_MS, SUB, event

B = 900_000  # 15 minutes in ms


def row(
    ts: int = START_MS,
    value: Any = 1,
    *,
    sub: str = "s_1",
    charge: str = "ch_1",
    flt: str = "",
    group: tuple[tuple[str, str], ...] = (),
    agg: str = "sum_agg",
    amount_cents: str | None = None,
    tx: str = "t",
) -> EnrichedRow:
    cents = None if amount_cents is None else Decimal(amount_cents)
    return EnrichedRow(
        event=event(ts=ts, tx=tx, amount_cents=cents),
        subscription_id=sub,
        plan_id="plan_basic",
        customer_id="c_1",
        aggregation_type=agg,
        value=str(value),
        decimal_value=to_decimal(value),
        charge_id=charge,
        charge_filter_id=flt,
        grouped_by=group,
    )


# ------------------------------------------------------------------------------------------------
# buckets


def test_bucket_is_15_minutes() -> None:
    assert BUCKET_MS == B


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        pytest.param(0, 0, id="epoch"),
        pytest.param(1, 0, id="epoch+1ms"),
        pytest.param(B - 1, 0, id="last-ms-of-first-bucket"),
        pytest.param(B, B, id="second-bucket-start"),
        pytest.param(B + 1, B, id="second-bucket+1ms"),
        pytest.param(START_MS, START_MS, id="midnight-is-a-boundary"),
        pytest.param(START_MS - 1, START_MS - B, id="one-ms-before-midnight"),
        pytest.param(START_MS + B - 1, START_MS, id="00:14:59.999"),
        pytest.param(START_MS + B, START_MS + B, id="00:15:00"),
        pytest.param(START_MS + 2 * B + 1, START_MS + 2 * B, id="00:30:00.001"),
        # 2023-11-14T22:13:20.123Z → 22:00:00 (1_700_000_000_123 % 900_000 = 800_123)
        pytest.param(1_700_000_000_123, 1_699_999_200_000, id="22:13:20.123->22:00"),
        # Nepal (UTC+05:45) local midnight is 18:15 UTC: a boundary too
        pytest.param(START_MS + 18 * 3_600_000 + B, START_MS + 18 * 3_600_000 + B, id="18:15"),
    ],
)
def test_bucket_start_ms(ts: int, expected: int) -> None:
    assert bucket_start_ms(ts) == expected


# ------------------------------------------------------------------------------------------------
# grouping


def key(
    bucket: int = START_MS, *, sub: str = "s_1", charge: str = "ch_1", flt: str = "",
    group: tuple[tuple[str, str], ...] = (), agg: str = "sum_agg",
) -> RollupKey:
    return RollupKey(ORG, SUB, sub, charge, flt, group, "api", agg, bucket)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([], {}, id="no-rows"),
        pytest.param(
            [row(START_MS, 1), row(START_MS + B - 1, 2)],
            {key(): (2, Decimal(3))},
            id="same-bucket-merged",
        ),
        pytest.param(
            [row(START_MS + B - 1, 1), row(START_MS + B, 2)],
            {key(): (1, Decimal(1)), key(START_MS + B): (1, Decimal(2))},
            id="bucket-boundary-splits",
        ),
        pytest.param(
            [row(value=1), row(value=2, sub="s_2")],
            {key(): (1, Decimal(1)), key(sub="s_2"): (1, Decimal(2))},
            id="by-subscription",
        ),
        pytest.param(
            [row(value=1), row(value=2, charge="ch_2")],
            {key(): (1, Decimal(1)), key(charge="ch_2"): (1, Decimal(2))},
            id="by-charge",
        ),
        pytest.param(
            [row(value=1), row(value=2, flt="f_eu"), row(value=4, flt="f_eu")],
            {key(): (1, Decimal(1)), key(flt="f_eu"): (2, Decimal(6))},
            id="by-filter",
        ),
        pytest.param(
            [row(value=1, group=(("r", "eu"),)), row(value=2, group=(("r", "us"),)),
             row(value=3, group=(("r", "eu"),))],
            {
                key(group=(("r", "eu"),)): (2, Decimal(4)),
                key(group=(("r", "us"),)): (1, Decimal(2)),
            },
            id="by-group",
        ),
        pytest.param(
            [row(value=1), row(value=5, charge=""), row(value=7, charge="", flt="f")],
            {key(): (1, Decimal(1))},
            id="rows-without-charge-skipped",
        ),
        pytest.param([row(charge="")], {}, id="only-unpriced-rows"),
    ],
)
def test_rollup_groups(
    rows: list[EnrichedRow], expected: dict[RollupKey, tuple[int, Decimal]]
) -> None:
    states = rollup(rows)
    assert {k: (s.events_count, s.value_sum) for k, s in states.items()} == expected


# ------------------------------------------------------------------------------------------------
# RollupState


T = START_MS


@pytest.mark.parametrize(
    ("rows", "count", "total", "vmax", "latest_ts", "latest"),
    [
        pytest.param([], 0, Decimal(0), None, -1, Decimal(0), id="empty"),
        pytest.param([row(T, "2.5")], 1, Decimal("2.5"), Decimal("2.5"), T, Decimal("2.5"),
                     id="one-row"),
        pytest.param([row(T + 2, 5), row(T + 1, 9)], 2, Decimal(14), Decimal(9), T + 2,
                     Decimal(5), id="greatest-timestamp-wins-not-arrival"),
        pytest.param([row(T + 1, 9), row(T + 2, 5)], 2, Decimal(14), Decimal(9), T + 2,
                     Decimal(5), id="greatest-timestamp-wins-in-order"),
        pytest.param([row(T, 5), row(T, 7)], 2, Decimal(12), Decimal(7), T, Decimal(7),
                     id="timestamp-tie-later-row-wins"),
        pytest.param([row(T, 7), row(T, 5)], 2, Decimal(12), Decimal(7), T, Decimal(5),
                     id="timestamp-tie-later-row-wins-smaller"),
        pytest.param([row(T, -3), row(T + 1, -1)], 2, Decimal(-4), Decimal(-1), T + 1,
                     Decimal(-1), id="negatives"),
        pytest.param([row(T, "0.1"), row(T, "0.2"), row(T, "-0.3")], 3, Decimal(0),
                     Decimal("0.2"), T, Decimal("-0.3"), id="exact-decimal-cancels"),
        pytest.param([row(T, "user_a", agg="unique_count_agg"),
                      row(T, "user_b", agg="unique_count_agg")],
                     2, Decimal(0), None, -1, Decimal(0), id="non-numeric-values-counted-only"),
    ],
)
def test_rollup_state(
    rows: list[EnrichedRow], count: int, total: Decimal, vmax: Decimal | None,
    latest_ts: int, latest: Decimal,
) -> None:
    state = RollupState()
    for r in rows:
        state.add(r)
    assert (
        state.events_count, state.value_sum, state.value_max,
        state.latest_timestamp_ms, state.latest_value,
    ) == (count, total, vmax, latest_ts, latest)


@pytest.mark.parametrize(
    ("cents", "expected"),
    [
        pytest.param([], Decimal(0), id="none"),
        pytest.param(["12.5", None, "0.25"], Decimal("12.75"), id="nulls-skipped"),
        pytest.param(["0.1", "0.2"], Decimal("0.3"), id="exact"),
    ],
)
def test_rollup_state_precise_total_amount_cents(
    cents: list[str | None], expected: Decimal
) -> None:
    state = RollupState()
    for c in cents:
        state.add(row(amount_cents=c))
    assert state.precise_total_amount_cents == expected
