"""The SQL text of the store's named read queries (the engine runs them in
tests/integration/test_store_contract.py)."""

from __future__ import annotations

import re

import pytest

from sinks.sql_usage import READ_USAGE, USAGE_QUERIES

_PARAM = re.compile(r"\{(\w+):(\w+)\}")


@pytest.mark.parametrize("query", USAGE_QUERIES, ids=lambda q: q.name)
def test_usage_reads_are_scoped_to_one_organization_and_never_final(query):
    text = query.sql("db")
    assert "organization_id = {o:String}" in text  # a tenant sees only its own rows
    assert "FINAL" not in text.upper().split()  # duplicates never reach the aggregates
    assert "{db}" not in text and " db." in text


@pytest.mark.parametrize("query", USAGE_QUERIES, ids=lambda q: q.name)
def test_parameters_are_placeholders_not_values(query):
    names = {name for name, _ in _PARAM.findall(query.text)}
    assert names and names <= {"o", "s", "f", "t", "tz"}


def test_usage_sums_the_buckets_of_one_subscription_over_the_window():
    assert READ_USAGE.sql("meterline") == (
        "SELECT charge_id, charge_filter_id, grouped_by, any(aggregation_type) agg, "
        "sum(events_count) n, toString(sum(value_sum)) s, toString(max(value_max)) mx, "
        "toString(argMax(latest_value, (latest_timestamp, latest_offset))) lv, "
        "toString(sum(precise_total_amount_cents)) p, toString(sum(value_time_sum)) vt "
        "FROM meterline.usage_rollups "
        "WHERE organization_id = {o:String} AND subscription_id = {s:String} "
        "AND bucket_start >= toDateTime(intDiv({f:Int64}, 1000), 'UTC') "
        "AND bucket_start < toDateTime(intDiv({t:Int64}, 1000), 'UTC') "
        "GROUP BY charge_id, charge_filter_id, grouped_by"
    )
