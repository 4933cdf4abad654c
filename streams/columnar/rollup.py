"""The roll-up of fast rows as one Arrow ``group_by``: the states of
:class:`aggregation.rollup.RollupState`, for count, sum, max and latest, as columns.

Per (template, 15-minute bucket): the row count, the exact sum and max of the values
(``decimal256(76, 12)``: every accepted value is below 10**26 with at most 12 decimals, see
``schemas.bounds``), and the value of the last row by (timestamp, offset, log order), which is
what ``RollupState.add`` keeps. ``precise_total_amount_cents`` may carry any number of decimals,
so its sums are added in Python, exactly, over the (few) rows that have one.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext

import pyarrow as pa
import pyarrow.compute as pc

from aggregation.rollup import BUCKET_MS, WIDE_PRECISION
from sinks import ddl
from sinks.wire import table_for

VALUE = pa.decimal128(38, 12)
SUM = pa.decimal256(76, 12)


def fast_rollups(
    rows: pa.Table, templates: dict[str, pa.Array], amounts: Sequence[Decimal | None],
    batch_id: str,
) -> pa.Table:
    """Wire table for ``usage_rollups`` of fast rows.

    ``rows``: one per fast row, in log order, with ``template`` (int32), ``timestamp_ms``,
    ``offset`` (its message's), ``value`` (the stored decimal's text) and ``event`` (its
    position in ``amounts``, the events' ``precise_total_amount_cents``). Rows whose template
    has no charge are left out, as ``aggregation.rollup.rollup`` does.
    """
    rolled = rows.filter(pc.take(templates["rolled"], rows["template"]))
    ts = rolled["timestamp_ms"]
    table = pa.table({
        "template": rolled["template"],
        "bucket": pc.multiply(pc.divide(ts, BUCKET_MS), BUCKET_MS),  # timestamps are >= 0
        "timestamp_ms": ts,
        "offset": rolled["offset"],
        "order": pa.array(range(rolled.num_rows), pa.int64()),
        "value": pc.cast(pc.cast(rolled["value"], VALUE), SUM),
        "event": rolled["event"],
    }).sort_by([
        ("template", "ascending"), ("bucket", "ascending"), ("timestamp_ms", "ascending"),
        ("offset", "ascending"), ("order", "ascending"),
    ])
    table = table.append_column("row", pa.array(range(table.num_rows), pa.int64()))
    groups = table.group_by(["template", "bucket"], use_threads=False).aggregate([
        ("value", "sum"), ("value", "max"), ("row", "max"), ("row", "count"),
    ])
    last = groups["row_max"]  # table columns are chunked: table_for joins the chunks
    ids = groups["template"]
    size = groups.num_rows
    return table_for(ddl.ROLLUPS_INSERT, {
        "organization_id": pc.take(templates["organization_id"], ids),
        "external_subscription_id": pc.take(templates["external_subscription_id"], ids),
        "subscription_id": pc.take(templates["subscription_id"], ids),
        "charge_id": pc.take(templates["charge_id"], ids),
        "charge_filter_id": pc.take(templates["charge_filter_id"], ids),
        "grouped_by": pc.take(templates["grouped_by_json"], ids),
        "code": pc.take(templates["code"], ids),
        "aggregation_type": pc.take(templates["aggregation_type"], ids),
        "bucket_start_ms": groups["bucket"],
        "events_count": pc.cast(groups["row_count"], pa.uint64()),
        "value_sum": pc.cast(groups["value_sum"], pa.string()),
        "value_max": pc.cast(groups["value_max"], pa.string()),
        "latest_timestamp_ms": pc.take(table["timestamp_ms"], last),
        "latest_offset": pc.cast(pc.take(table["offset"], last), pa.uint64()),
        "latest_value": pc.cast(pc.take(table["value"], last), pa.string()),
        "precise_total_amount_cents": _amount_sums(table, groups, amounts),
        "value_time_sum": ["0"] * size,  # weighted_sum is not a fast type
        "batch_id": [batch_id] * size,
    })


def _amount_sums(
    table: pa.Table, groups: pa.Table, amounts: Sequence[Decimal | None]
) -> list[str]:
    """Σ precise_total_amount_cents per group, exact (``Decimal`` at 100 digits)."""
    size = groups.num_rows
    if all(a is None for a in amounts):
        return ["0"] * size
    sums: dict[tuple[int, int], Decimal] = {}
    with localcontext() as ctx:
        ctx.prec = WIDE_PRECISION
        for template, bucket, event in zip(
            table["template"].to_pylist(), table["bucket"].to_pylist(),
            table["event"].to_pylist(), strict=True,
        ):
            amount = amounts[event]
            if amount is not None:
                key = (template, bucket)
                sums[key] = sums.get(key, Decimal(0)) + amount
    return [
        str(sums.get(key, Decimal(0)))
        for key in zip(groups["template"].to_pylist(), groups["bucket"].to_pylist(), strict=True)
    ]
