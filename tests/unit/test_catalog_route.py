"""``CatalogIndex.route`` (memoized with a validity range) answers as the direct lookups do."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from enrichment.catalog_index import CatalogIndex
from schemas.catalog import Customer, Subscription
from tests.unit.catalog_factory import charge, metric, plan

ORG = "org_1"
T0 = 1_700_000_000_000
STEP = 1_000


def at(step: int) -> int:
    return T0 + step * STEP


def moment(step: int) -> datetime:
    return datetime.fromtimestamp(at(step) / 1000, tz=UTC)


lifetimes = st.lists(
    st.tuples(st.integers(0, 40), st.one_of(st.none(), st.integers(0, 40))), max_size=4
)


@settings(max_examples=200, deadline=None)
@given(
    metric_starts=st.lists(st.integers(0, 40), max_size=3),
    metric_deleted=st.booleans(),
    plan_starts=st.lists(st.integers(0, 40), max_size=3),
    subs=lifetimes,
    probes=st.lists(st.integers(-5, 45), min_size=1, max_size=40),
)
def test_route_matches_the_direct_lookups(
    metric_starts, metric_deleted, plan_starts, subs, probes
):
    history: dict = {}
    metric_versions: list = [(at(s), metric(field_name=f"f{i}")) for i, s in enumerate(
        metric_starts)]
    if metric_deleted and metric_versions:
        metric_versions.append((at(max(metric_starts) + 1), None))
    history[(ORG, "billable_metric", "api")] = metric_versions
    history[(ORG, "plan", "basic")] = [
        (at(s), plan(charge(f"ch_{i}"))) for i, s in enumerate(plan_starts)
    ]
    history[(ORG, "customer", "c")] = [(0, Customer(ORG, "cust_id", "c"))]
    for i, (start, length) in enumerate(subs):
        end = None if length is None else moment(start + length)
        sub = Subscription(ORG, f"s_{i}", "ext", "c", "basic", moment(start), terminated_at=end)
        history[(ORG, "subscription", sub.id)] = [(0, sub)]
    index = CatalogIndex(history=history)

    for step in probes:  # one index, probes in random order: the memo is exercised
        for ts in (at(step) - 1, at(step), at(step) + 1):
            route = index.route(ORG, "ext", "api", ts)
            expected_metric = index.metric_at(ORG, "api", ts)
            expected_sub = index.subscription_at(ORG, "ext", ts)
            expected_plan = (
                index.plan_at(ORG, expected_sub.plan_code, ts) if expected_sub else None
            )
            assert route.metric is expected_metric
            assert route.subscription is expected_sub
            assert route.plan_id == (expected_plan.id if expected_plan else "")
            assert route.customer_id == ("cust_id" if expected_sub else "")
            expected_charges = (
                index.charges_for(expected_plan, "api")
                if expected_plan and expected_metric else ()
            )
            assert route.charges == expected_charges
            assert route.valid_from <= ts < route.valid_to


def test_route_is_memoized_within_its_range_and_rebuilt_outside():
    history = {
        (ORG, "billable_metric", "api"): [(at(0), metric(field_name="a")),
                                          (at(10), metric(field_name="b"))],
        (ORG, "plan", "basic"): [(0, plan(charge()))],
        (ORG, "customer", "c"): [(0, Customer(ORG, "cust_id", "c"))],
        (ORG, "subscription", "s_1"): [
            (0, Subscription(ORG, "s_1", "ext", "c", "basic", moment(0)))
        ],
    }
    index = CatalogIndex(history=history)
    first = index.route(ORG, "ext", "api", at(1))
    assert index.route(ORG, "ext", "api", at(9)) is first
    later = index.route(ORG, "ext", "api", at(10))
    assert later is not first and later.metric.field_name == "b"
    assert index.route(ORG, "ext", "api", at(2)).metric.field_name == "a"
