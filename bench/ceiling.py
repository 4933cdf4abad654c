"""The machine's ceiling: a columnar happy path from the raw topic to the aggregates.

An upper bound for any worker built from these parts (one Python process, confluent-kafka or
aiokafka, chdb in-process) on the machine it runs on. It does a strict subset of the
pipeline's work, each part the cheapest way measured:

* fetch with confluent-kafka (``consume``, the cheaper client: BENCHMARKS.md, fourth round);
* Python touches each message once: its value, partition and offset into Arrow columns; Avro
  messages (``value[0] == 0``) are decoded with fastavro into the same columns;
* chdb parses the JSON (``JSONExtract``), joins subscriptions and charges from the bench
  catalog, and writes ``events``, ``dedup_keys`` and ``usage_rollups`` (the real tables), from
  one staged copy of the enriched rows, in a writer thread while the next batch is fetched.

Left out, so the real pipeline can only be slower: validation and its error codes, dedup
decisions (the identity is a SQL ``sipHash128``, not blake2b, and nothing is looked up),
the commit manifest, dead letters, ``unique_rollups`` and ``event_values``, Kafka offset
commits, Decimal checks. Charge filters are matched on one key with one value per filter, and
each charge has at most one pricing group key: the bench catalog's shape.

Run by ``bench.run`` (phase 8) on the same backlog as the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.worker import cpu_seconds, vm_hwm_kb, write_json
from schemas.avro import MAGIC_BYTE, decode_confluent, load_schemas
from sinks.chdb_store import ChdbStore

BATCH = 50_000
_JSON_SHAPE = (
    "Tuple(transaction_id String, external_subscription_id String, organization_id String, "
    "code String, timestamp Float64, properties Map(String, String))"
)


def catalog_rows(doc: dict[str, Any]) -> tuple[list[tuple], list[tuple]]:
    """(subscription rows, charge rows) of the lookup tables, from a bench catalog document."""
    metrics = {m["code"]: m for m in doc["billable_metrics"]}
    subscriptions = [
        (s["external_id"], f"id-{s['external_id']}", s["plan_code"], s["external_customer_id"])
        for s in doc["subscriptions"]
    ]
    charges = []
    for plan in doc["plans"]:
        for charge in plan["charges"]:
            metric = metrics[charge["billable_metric_code"]]
            group_keys = charge["properties"].get("pricing_group_keys") or [""]
            filter_key, values, filter_ids = "", [], []
            for n, f in enumerate(charge.get("filters", [])):
                ((filter_key, allowed),) = f["values"].items()
                values += allowed
                filter_ids += [f"{plan['code']}:{metric['code']}:f{n}"] * len(allowed)
            charges.append((
                plan["code"], metric["code"], f"{plan['code']}:{metric['code']}",
                metric.get("field_name") or "", metric["aggregation_type"], group_keys[0],
                filter_key, values, filter_ids,
            ))
    return subscriptions, charges


class CeilingSql:
    """The statements of one batch, in order, over three staging tables (Memory engine)."""

    def __init__(self, db: str):
        enriched = f"""
            SELECT st.organization_id AS organization_id,
                   st.external_subscription_id AS external_subscription_id, st.code AS code,
                   st.transaction_id AS transaction_id, st.timestamp_ms AS timestamp_ms,
                   st.properties AS properties, st.part AS part, st.off AS off,
                   sb.subscription_id AS subscription_id, sb.plan_id AS plan_id,
                   sb.customer_id AS customer_id, c.charge_id AS charge_id, c.agg AS agg,
                   if(c.field = '', '1', st.properties[c.field]) AS value,
                   if(c.filter_key = '', '',
                      c.filter_ids[indexOf(c.filter_values, st.properties[c.filter_key])])
                      AS filter_id,
                   if(c.group_key = '', map(), map(c.group_key, st.properties[c.group_key]))
                      AS grouped
            FROM {db}.ceiling_stage AS st
            INNER JOIN {db}.ceiling_subs AS sb ON sb.external_id = st.external_subscription_id
            INNER JOIN {db}.ceiling_charges AS c ON c.plan_id = sb.plan_id AND c.code = st.code"""
        self.setup = (
            f"""CREATE TABLE {db}.ceiling_subs (external_id String, subscription_id String,
                plan_id String, customer_id String) ENGINE = Memory""",
            f"""CREATE TABLE {db}.ceiling_charges (plan_id String, code String, charge_id String,
                field String, agg String, group_key String, filter_key String,
                filter_values Array(String), filter_ids Array(String)) ENGINE = Memory""",
            f"""CREATE TABLE {db}.ceiling_stage (organization_id String,
                external_subscription_id String, code String, transaction_id String,
                timestamp_ms Int64, properties Map(String, String), part UInt32, off UInt64)
                ENGINE = Memory""",
        )
        self.create_enriched = (
            f"CREATE TABLE {db}.ceiling_enriched ENGINE = Memory AS {enriched} LIMIT 0"
        )
        self.steps = {
            "parse_json": f"""INSERT INTO {db}.ceiling_stage
                SELECT e.organization_id, e.external_subscription_id, e.code, e.transaction_id,
                       toInt64(e.timestamp * 1000), e.properties, partition, offset
                FROM (SELECT JSONExtract(value, '{_JSON_SHAPE}') AS e, partition, offset
                      FROM Python(raw))""",
            "stage_avro": f"INSERT INTO {db}.ceiling_stage SELECT * FROM Python(avro)",
            "enrich": f"INSERT INTO {db}.ceiling_enriched {enriched}",
            "dedup_keys": f"""INSERT INTO {db}.dedup_keys
                SELECT reinterpretAsFixedString(sipHash128(organization_id, '\\x1f',
                       external_subscription_id, '\\x1f', transaction_id)), 'ceiling', 'raw',
                       part, off, fromUnixTimestamp64Milli(timestamp_ms, 'UTC')
                FROM {db}.ceiling_stage""",
            "events": f"""INSERT INTO {db}.events
                SELECT organization_id, external_subscription_id, subscription_id, plan_id,
                       customer_id, code, agg, transaction_id,
                       fromUnixTimestamp64Milli(timestamp_ms, 'UTC'), value,
                       toDecimal128OrNull(value, 12), charge_id, filter_id, grouped, NULL,
                       toJSONString(properties), now64(3), 'raw', part, off, 'ceiling'
                FROM {db}.ceiling_enriched""",
            "usage_rollups": f"""INSERT INTO {db}.usage_rollups
                SELECT organization_id, external_subscription_id, subscription_id, charge_id,
                       filter_id, toJSONString(grouped), code, agg,
                       toDateTime(intDiv(timestamp_ms, 900000) * 900, 'UTC'), count(),
                       sum(toDecimal128(value, 12)), max(toDecimal128(value, 12)),
                       fromUnixTimestamp64Milli(max(timestamp_ms), 'UTC'), max(off),
                       argMax(toDecimal128(value, 12), (timestamp_ms, off)),
                       toDecimal128(0, 12), toDecimal256(0, 15), 'ceiling'
                FROM {db}.ceiling_enriched GROUP BY ALL""",
            "truncate": f"TRUNCATE TABLE {db}.ceiling_stage",
            "truncate_enriched": f"TRUNCATE TABLE {db}.ceiling_enriched",
        }


def raw_columns(messages: list[Any], schemas: dict) -> tuple[pa.Table, pa.Table | None]:
    """(JSON values with their positions, decoded Avro events in staging columns)."""
    values, partitions, offsets, avro = [], [], [], []
    for m in messages:
        value = m.value()
        if value and value[0] == MAGIC_BYTE:
            avro.append((decode_confluent(value, schemas), m.partition(), m.offset()))
        else:
            values.append(value)
            partitions.append(m.partition())
            offsets.append(m.offset())
    raw = pa.table({"value": pa.array(values, pa.binary()),
                    "partition": pa.array(partitions, pa.uint32()),
                    "offset": pa.array(offsets, pa.uint64())})
    if not avro:
        return raw, None
    events = [e for e, _, _ in avro]
    return raw, pa.table({
        "organization_id": [e["organization_id"] for e in events],
        "external_subscription_id": [e["external_subscription_id"] for e in events],
        "code": [e["code"] for e in events],
        "transaction_id": [e["transaction_id"] for e in events],
        "timestamp_ms": pa.array([int(e["timestamp"] * 1000) for e in events], pa.int64()),
        "properties": pa.array([list((e["properties"] or {}).items()) for e in events],
                               pa.map_(pa.string(), pa.string())),
        "part": pa.array([p for _, p, _ in avro], pa.uint32()),
        "off": pa.array([o for _, _, o in avro], pa.uint64()),
    })


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Drain ``args.events`` messages through the happy path; the measurements as a dict."""
    store = ChdbStore(Path(args.data_dir))
    store.ensure_schema()
    session, sql = store._session, CeilingSql(store.database)
    for statement in sql.setup:
        session.query(statement, "CSV")
    subscriptions, charges = catalog_rows(json.loads(Path(args.catalog).read_text()))
    subs = pa.table(list(zip(*subscriptions, strict=True)),  # noqa: F841  (read by Python())
                    names=["external_id", "subscription_id", "plan_id", "customer_id"])
    session.query(f"INSERT INTO {store.database}.ceiling_subs SELECT * FROM Python(subs)", "CSV")
    charge_table = pa.table(  # noqa: F841  (read by Python())
        list(zip(*charges, strict=True)),
        names=["plan_id", "code", "charge_id", "field", "agg", "group_key", "filter_key",
               "filter_values", "filter_ids"])
    session.query(
        f"INSERT INTO {store.database}.ceiling_charges SELECT * FROM Python(charge_table)", "CSV")
    session.query(sql.create_enriched, "CSV")

    step_seconds: dict[str, float] = dict.fromkeys(sql.steps, 0.0)
    handoff: queue.Queue = queue.Queue(maxsize=1)  # one batch written while the next is read
    written: dict[str, Any] = {"events": 0, "done_at": 0.0, "error": None}

    def write_batches() -> None:
        try:
            while (item := handoff.get()) is not None:
                raw, avro, count = item  # noqa: RUF059  (raw: read by Python())
                for step, statement in sql.steps.items():
                    if step == "stage_avro" and avro is None:
                        continue
                    started = time.perf_counter()
                    session.query(statement, "CSV")
                    step_seconds[step] += time.perf_counter() - started
                written["events"] += count
                written["done_at"] = time.perf_counter()
        except Exception as exc:  # reported by the reading loop
            written["error"] = f"{type(exc).__name__}: {exc}"

    writer = threading.Thread(target=write_batches, name="ceiling-writer")
    writer.start()
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": "bench-ceiling",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "queued.max.messages.kbytes": 262144, "fetch.max.bytes": 52428800,
        "max.partition.fetch.bytes": 8388608,
    })
    # assigned, not subscribed: no consumer-group round trips before the first fetch
    partitions = consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    schemas = load_schemas()
    consumed, python_seconds, first = 0, 0.0, 0.0
    cpu_at_start, broker_cpu_at_start = 0.0, 0.0
    deadline = time.monotonic() + args.timeout
    try:
        while consumed < args.events and written["error"] is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {consumed} of {args.events} events in {args.timeout}s")
            messages = consumer.consume(num_messages=min(BATCH, args.events - consumed),
                                        timeout=0.1)
            messages = [m for m in messages if m.error() is None]
            if not messages:
                continue
            if not first:
                first = time.perf_counter()
                cpu_at_start = cpu_seconds()
                broker_cpu_at_start = process_cpu_seconds(args.broker_pid)
            started = time.perf_counter()
            batch = raw_columns(messages, schemas)
            python_seconds += time.perf_counter() - started
            consumed += len(messages)
            handoff.put((*batch, len(messages)))
    finally:
        handoff.put(None)
        writer.join()
        consumer.close()
    if written["error"]:
        raise RuntimeError(f"ceiling writer failed: {written['error']}")
    seconds = written["done_at"] - first
    cpu = cpu_seconds() - cpu_at_start
    broker_cpu = process_cpu_seconds(args.broker_pid) - broker_cpu_at_start
    counts = store._query(
        f"SELECT (SELECT count() FROM {store.database}.events) AS events, "
        f"(SELECT count() FROM {store.database}.dedup_keys) AS dedup_keys, "
        f"(SELECT sum(events_count) FROM {store.database}.usage_rollups) AS rolled_up, "
        f"(SELECT count() FROM {store.database}.usage_rollups) AS usage_rollups"
    ).to_pylist()[0]
    store.close()
    per_event = 1e6 / consumed
    return {
        "events": consumed, "seconds": round(seconds, 3),
        "events_per_s": round(consumed / seconds, 1),
        "cpu_cores_used": round(cpu / seconds, 2),
        "cpu_us_per_event": round(cpu * per_event, 2),
        "broker_cpu_us_per_event": round(broker_cpu * per_event, 2),
        "python_us_per_event": round(python_seconds * per_event, 2),
        "sql_us_per_event": {k: round(v * per_event, 2) for k, v in step_seconds.items()},
        "rows": counts,
        "vm_hwm_kb": vm_hwm_kb(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--events", type=int, required=True, help="messages to read from the start")
    p.add_argument("--data-dir", required=True, help="a new chdb data directory")
    p.add_argument("--catalog", required=True, help="the bench catalog document (JSON)")
    p.add_argument("--broker-pid", type=int, default=0, help="for the broker's CPU time")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--status", required=True, help="where the result JSON is written")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    write_json(Path(args.status), {**result, "done_at": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
