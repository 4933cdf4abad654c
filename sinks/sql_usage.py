"""The store's SQL for billing: usage read from the pre-aggregates, and event lookups.

Reads never scan raw events for usage and never use ``FINAL``; every one is scoped to one
organization (tests/unit/test_sql_queries.py checks the text).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from aggregation.usage_aggregate import UsageAggregate
from sinks.sql_base import Query, SqlBase
from sinks.store import FeeKey

_BUCKET_WINDOW = (
    "WHERE organization_id = {o:String} AND subscription_id = {s:String} "
    "AND bucket_start >= toDateTime(intDiv({f:Int64}, 1000), 'UTC') "
    "AND bucket_start < toDateTime(intDiv({t:Int64}, 1000), 'UTC')"
)


READ_USAGE = Query(
    "read_usage",
    "SELECT charge_id, charge_filter_id, grouped_by, any(aggregation_type) agg, "
    "sum(events_count) n, toString(sum(value_sum)) s, toString(max(value_max)) mx, "
    "toString(argMax(latest_value, (latest_timestamp, latest_offset))) lv, "
    "toString(sum(precise_total_amount_cents)) p, toString(sum(value_time_sum)) vt "
    f"FROM {{db}}.usage_rollups {_BUCKET_WINDOW} "
    "GROUP BY charge_id, charge_filter_id, grouped_by",
)
READ_DAILY_SUMS = Query(
    "read_daily_sums",
    "SELECT charge_id, charge_filter_id, grouped_by, "
    "toString(toDate(bucket_start, {tz:String})) day, toString(sum(value_sum)) s "
    f"FROM {{db}}.usage_rollups {_BUCKET_WINDOW} "
    "GROUP BY charge_id, charge_filter_id, grouped_by, day ORDER BY day",
)
READ_UNIQUE = Query(
    "read_unique",
    "SELECT charge_id, charge_filter_id, grouped_by, countIf(last_add = 1) present, "
    "sum(n) events FROM (SELECT charge_id, charge_filter_id, grouped_by, value, "
    "argMax(latest_add, (latest_timestamp, latest_offset)) last_add, "
    f"sum(events_count) n FROM {{db}}.unique_rollups {_BUCKET_WINDOW} "
    "GROUP BY charge_id, charge_filter_id, grouped_by, value) "
    "GROUP BY charge_id, charge_filter_id, grouped_by",
)
READ_EVENT_VALUES = Query(
    "read_event_values",
    "SELECT charge_id, charge_filter_id, grouped_by, "
    "arrayMap(x -> toString(x.3), arraySort(groupArray((timestamp, source_offset, value)))) vals "
    "FROM {db}.event_values "
    "WHERE organization_id = {o:String} AND subscription_id = {s:String} "
    "AND timestamp >= fromUnixTimestamp64Milli({f:Int64}, 'UTC') "
    "AND timestamp < fromUnixTimestamp64Milli({t:Int64}, 'UTC') "
    "GROUP BY charge_id, charge_filter_id, grouped_by",
)
FIND_EVENTS = Query(
    "find_events",
    "SELECT organization_id, external_subscription_id, subscription_id, customer_id, "
    "plan_id, code, transaction_id, toUnixTimestamp64Milli(timestamp) timestamp_ms, "
    "value, properties, precise_total_amount_cents, charge_id, charge_filter_id, "
    "toUnixTimestamp64Milli(ingested_at) ingested_at_ms "
    "FROM {db}.events WHERE organization_id = {o:String} AND transaction_id = {t:String} "
    "ORDER BY ingested_at DESC LIMIT 100",
)
USAGE_QUERIES = (READ_USAGE, READ_DAILY_SUMS, READ_UNIQUE, READ_EVENT_VALUES, FIND_EVENTS)


def _groups(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(orjson.loads(text or "{}").items()))


def _fee_key(row: dict[str, Any]) -> FeeKey:
    """(charge_id, charge_filter_id, grouped_by) of a result row."""
    return (row["charge_id"], row["charge_filter_id"], _groups(row["grouped_by"]))


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


class UsageSql(SqlBase):
    """Usage per (charge, filter, group) over a window, and enriched rows of a transaction."""

    def read_usage(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> list[UsageAggregate]:
        """Sum the pre-aggregated buckets of one subscription over ``[from_ms, to_ms)``."""
        rows = self._rows(
            READ_USAGE.sql(self.database),
            {"o": organization_id, "s": subscription_id, "f": from_ms, "t": to_ms},
        )
        return [
            UsageAggregate(
                charge_id=r["charge_id"],
                charge_filter_id=r["charge_filter_id"],
                grouped_by=_groups(r["grouped_by"]),
                aggregation_type=r["agg"],
                events_count=r["n"],
                value_sum=Decimal(r["s"]),
                value_max=_dec(r["mx"]),
                latest_value=_dec(r["lv"]),
                precise_total_amount_cents=Decimal(r["p"]),
                value_time_sum=Decimal(r["vt"]),
            )
            for r in rows
        ]

    def read_daily_sums(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int,
        timezone: str,
    ) -> dict[FeeKey, list[tuple[str, Decimal]]]:
        """Per (charge, filter, group): Σ value per local day (``timezone``), for proration."""
        rows = self._rows(
            READ_DAILY_SUMS.sql(self.database),
            {"o": organization_id, "s": subscription_id, "f": from_ms, "t": to_ms,
             "tz": timezone},
        )
        out: dict[FeeKey, list[tuple[str, Decimal]]] = {}
        for r in rows:
            key = _fee_key(r)
            out.setdefault(key, []).append((r["day"], Decimal(r["s"])))
        return out

    def read_unique(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> dict[FeeKey, tuple[int, int]]:
        """Per (charge, filter, group): values present at the end of the window, and events.

        A value is present when its last operation in the window (by timestamp, then log
        position) is an add.
        """
        rows = self._rows(
            READ_UNIQUE.sql(self.database),
            {"o": organization_id, "s": subscription_id, "f": from_ms, "t": to_ms},
        )
        return {
            _fee_key(r):
                (r["present"], r["events"])
            for r in rows
        }

    def read_event_values(
        self, organization_id: str, subscription_id: str, from_ms: int, to_ms: int
    ) -> dict[FeeKey, tuple[Decimal, ...]]:
        """Per (charge, filter, group): values of percentage charges in event order."""
        rows = self._rows(
            READ_EVENT_VALUES.sql(self.database),
            {"o": organization_id, "s": subscription_id, "f": from_ms, "t": to_ms},
        )
        return {
            _fee_key(r):
                tuple(Decimal(v) for v in r["vals"])
            for r in rows
        }

    def find_events(self, organization_id: str, transaction_id: str) -> list[dict[str, Any]]:
        """Enriched rows of one transaction id, newest first."""
        return self._rows(
            FIND_EVENTS.sql(self.database),
            {"o": organization_id, "t": transaction_id},
        )
