"""The baseline: a Faust per-event agent doing Meterline's work one event at a time.

``@app.agent(topic)`` with ``async for value in stream:``, and for every event:

* decode + parse: :func:`streams.batch.decode` (JSON or Confluent Avro, then
  :func:`schemas.event.parse_event`), on the record's Kafka metadata;
* dedup: an in-memory ``set`` of event identities (:func:`streams.batch.identity_of`); cheaper
  than Meterline's dedup index in ClickHouse, and lost at restart: it favours the baseline;
* enrich: :func:`enrichment.enricher.enrich` against the same catalog (:class:`CatalogService`);
* every ``--flush-every`` events (10k): roll the accumulated rows up with
  :func:`aggregation.rollup.rollup` (the pipeline's function; the per-row work is the same
  whether it runs per event or per flush) and INSERT the enriched events and the roll-ups
  through the same store class (:class:`ChdbStore`, its own data directory, same tables and
  wire tables). No manifest, no dedup-key table: again in the baseline's favour.

Faust commits offsets on its own timer. Timing: from the first event seen by the agent to the
end of the INSERT that follows the ``--events``-th event. Status JSON goes to ``--status``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import faust

from aggregation.rollup import rollup
from bench.worker import cpu_seconds, vm_hwm_kb, write_json
from enrichment.enricher import Rejection, enrich
from services.catalog import CatalogService
from sinks import ddl, wire
from sinks.chdb_store import ChdbStore
from streams.batch import DeadLetter, RawRecord, decode, identity_of

ORG = "default"


def build(args: argparse.Namespace) -> faust.App:
    data_dir = Path(args.data_dir)
    store = ChdbStore(data_dir / "chdb")
    store.ensure_schema()
    catalog = CatalogService(store)
    catalog.apply_document(ORG, json.loads(Path(args.catalog).read_text()))
    status_path = Path(args.status)

    app = faust.App(
        f"bench-baseline-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{args.bootstrap}",
        datadir=str(data_dir / "faust"),
        web_enabled=False,
        # as meterline/app.py configures Meterline's own Faust app (the defaults make the first
        # group join on Tansu wait ~30 s)
        broker_session_timeout=6.0,
        broker_heartbeat_interval=2.0,
        broker_rebalance_timeout=10.0,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    state: dict[str, Any] = {
        "pid": os.getpid(), "target": args.events, "seen": 0, "stored": 0, "duplicates": 0,
        "dead_letters": 0, "inserts": 0, "insert_rows": 0, "first_consumed_at": None,
        "done_at": None, "cpu_seconds": 0.0,
    }
    cpu_at_first = [0.0]
    seen: set[bytes] = set()
    rows: list = []
    sources: list = []
    flushes = [0]

    async def flush() -> None:
        if not rows:
            return
        flushes[0] += 1
        batch_id = f"baseline:{flushes[0]}"
        states = rollup(rows, [m.offset for m in sources])
        events = wire.events_table(rows, sources, int(time.time() * 1000), batch_id)
        rollups = wire.rollups_table(states, batch_id)
        rows.clear()
        sources.clear()
        for spec, table in ((ddl.EVENTS_INSERT, events), (ddl.ROLLUPS_INSERT, rollups)):
            await asyncio.to_thread(store.insert, spec, table, f"{batch_id}:{spec.table}")
            state["inserts"] += 1
            state["insert_rows"] += table.num_rows

    @app.agent(topic)
    async def per_event(stream: Any) -> None:
        index = catalog.index
        async for value in stream:
            if state["first_consumed_at"] is None:
                state["first_consumed_at"] = time.time()
                cpu_at_first[0] = cpu_seconds()
            message = stream.current_event.message
            record = RawRecord(message.topic, message.partition, message.offset,
                            int(message.timestamp * 1000), value)
            state["seen"] += 1
            parsed = decode(record)
            if isinstance(parsed, DeadLetter):
                state["dead_letters"] += 1
            else:
                identity = identity_of(parsed)
                if identity in seen:
                    state["duplicates"] += 1
                else:
                    outcome = enrich(parsed, index)
                    if isinstance(outcome, Rejection):
                        state["dead_letters"] += 1
                    else:
                        seen.add(identity)
                        state["stored"] += 1
                        rows.extend(outcome)
                        sources.extend([record] * len(outcome))
            if state["seen"] % args.flush_every == 0 or state["seen"] == args.events:
                await flush()
            if state["seen"] == args.events:
                state["done_at"] = time.time()
                state["cpu_seconds"] = round(cpu_seconds() - cpu_at_first[0], 3)

    @app.timer(interval=0.25)
    async def report() -> None:
        write_json(status_path, {**state, "time": time.time(), "vm_hwm_kb": vm_hwm_kb()})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--flush-every", type=int, default=10_000)
    args = parser.parse_args()
    app = build(args)
    loglevel = os.environ.get("BENCH_FAUST_LOGLEVEL", "warning")
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
