"""``make bench``: Meterline against a Faust per-event baseline, in one run, on the embedded stack.

Phases (all against one Tansu broker started here, and fresh chdb data directories in a tmp dir):

1. catalog: 1,000 subscriptions on three plans (filters, pricing group keys, a count metric),
   applied with :class:`CatalogService` to the worker's store;
2. backlog: ``--events`` events (5% duplicate transaction ids, 20% Confluent Avro) produced up
   front with confluent-kafka to a 4-partition topic; the first ``--baseline-events`` of them
   also to the baseline's topic;
3. throughput: ONE worker process (:mod:`bench.worker`, the real ``Pipeline``) drains the
   backlog; events/s = events / (last batch committed - first message consumed);
4. freshness: a paced producer sends at half that rate for ``--freshness-seconds``, stamping each
   message's Kafka timestamp; latency = commit time of its batch - Kafka timestamp, every message;
5. optional top-up to ``--read-events`` stored events, then the worker stops (peak RSS read
   from /proc/<pid>/status VmHWM just before);
6. billing reads: ``UsageService.usage`` of one subscription's current period, ``--reads`` times;
7. baseline: a Faust per-event agent (:mod:`bench.baseline`) on its prefix of the same events;
8. ceiling: a columnar happy path (:mod:`bench.ceiling`) on ``--ceiling-events`` of the same
   backlog: an upper bound for any worker of this process layout on this machine.

Results go to ``bench/results/<timestamp>.json`` (``--out``) and a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.worker import percentiles, vm_hwm_kb, write_json
from bench.workload import (
    ORG,
    EventStream,
    build_catalog,
    bulk_producer,
    flush,
    paced_producer,
    produce,
    subscription_id,
)
from services.catalog import CatalogService
from services.usage import UsageService
from sinks.chdb_store import ChdbStore
from streams.broker import EmbeddedBroker
from streams.kafka import client_options, ensure_topics

REPO = Path(__file__).resolve().parent.parent
RAW_TOPIC = "bench-raw"
DEAD_TOPIC = "bench-dead"
BASELINE_TOPIC = "bench-baseline"

TARGETS = {  # issue 18's targets
    "throughput_events_per_s": 100_000,
    "ratio": 20.0,
    "inserts_per_s_per_table": 1.0,
    "rows_per_insert": 10_000,
    "freshness_p99_ms": 1_000,
    "billing_read_p99_ms": 20,
    "peak_rss_mb": 1024,
}
# The pure steps of the preparing thread, in order (their CPU is metered per step).
PREPARE_STEPS = ("parse", "dedup", "enrich", "rollup", "wire")
# Tables whose rows scale with events. The commit manifest (``batch_begins`` and ``batches``:
# one row per partition and marker, one marker per table per batch) is judged on INSERT/s only.
DATA_TABLES = ("dedup_keys", "events", "usage_rollups")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_mb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(), "mem_total_mb": mem_mb}


class Child:
    """A subprocess of this run, with a log file and a JSON status file."""

    def __init__(self, name: str, cmd: list[str], run_dir: Path):
        self.name = name
        self.status_path = run_dir / f"{name}.status.json"
        self.log_path = run_dir / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *cmd, "--status", str(self.status_path)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        self.peak_kb = 0

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def sample_rss(self) -> None:
        self.peak_kb = max(self.peak_kb, vm_hwm_kb(self.process.pid))

    def wait_for(self, what: str, done: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            self.sample_rss()
            if status and done(status):
                return status
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}) waiting for "
                                   f"{what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {what} after {timeout:.0f}s; last status "
                                   f"{status}\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 90) -> None:
        """SIGTERM our own child and wait; SIGKILL if it does not stop."""
        if self.process.poll() is not None:
            return
        self.sample_rss()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop in {timeout}s; killing it")
            self.process.kill()
            self.process.wait(30)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def produce_backlog(
    bootstrap: str, stream: EventStream, count: int, prefix: str, *,
    baseline: int = 0,
) -> tuple[float, dict[str, int]]:
    """Produce ``count`` events to the raw topic (the first ``baseline`` also to the baseline
    topic). Returns the seconds taken and the baseline prefix's tally."""
    producer = bulk_producer(bootstrap)
    started = time.perf_counter()
    prefix_tally = asdict(stream.tally)
    for i in range(count):
        key, value = stream.next(prefix)
        produce(producer, RAW_TOPIC, key, value)
        if i < baseline:
            produce(producer, BASELINE_TOPIC, key, value)
            if i == baseline - 1:
                prefix_tally = asdict(stream.tally)
        if i % 20_000 == 0:
            producer.poll(0)
            if i and i % 500_000 == 0:
                log(f"  produced {i:,}")
    flush(producer)
    return time.perf_counter() - started, prefix_tally


def paced(
    bootstrap: str, stream: EventStream, per_second: float, seconds: float
) -> tuple[int, float]:
    """Send at ``per_second`` for ``seconds``, each message's Kafka timestamp = its send time.
    Returns the count sent and the seconds the sending took."""
    # Generated up front: a real producer runs elsewhere, here it would share the 2 cores.
    messages = [stream.next("fr") for _ in range(int(per_second * seconds) + 1)]
    producer = paced_producer(bootstrap)
    started = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = min(len(messages), int(per_second * elapsed))
        while sent < due:
            key, value = messages[sent]
            produce(producer, RAW_TOPIC, key, value, int(time.time() * 1000))
            sent += 1
        producer.poll(0)
        time.sleep(0.005)
    for key, value in messages[sent:]:  # the last one or two: every generated event is sent
        produce(producer, RAW_TOPIC, key, value, int(time.time() * 1000))
    flush(producer, 120)
    return len(messages), time.perf_counter() - started


def billing_reads(data_dir: Path, subscriptions: int, reads: int, seed: int) -> dict[str, Any]:
    """Time ``UsageService.usage`` (current period) for random subscriptions, after warm-up."""
    store = ChdbStore(data_dir / "chdb")
    try:
        catalog = CatalogService(store)
        catalog.load()
        usage = UsageService(store, lambda: catalog.index)
        rng = random.Random(seed)
        hot = max(1, subscriptions // 5)
        picks = [subscription_id(rng.randrange(hot) if rng.random() < 0.5
                                 else rng.randrange(subscriptions)) for _ in range(reads)]
        for sub in picks[:3]:  # warm-up (first query plans, caches), not counted
            usage.usage(ORG, sub)
        times_ms = []
        events_seen = 0
        for sub in picks:
            started = time.perf_counter()
            answer = usage.usage(ORG, sub)
            times_ms.append((time.perf_counter() - started) * 1000)
            events_seen = max(events_seen, sum(c["events_count"] for c in answer["charges_usage"]))
        counts = store.partition_counts()
        totals = {k: sum(getattr(c, k) for c in counts if c.topic == RAW_TOPIC)
                  for k in ("consumed", "stored", "duplicates", "dead_letters")}
        return {"reads": reads, **{f"{k}_ms": round(v, 2) for k, v in
                                   percentiles(times_ms).items()},
                "max_events_in_one_answer": events_seen, "store_totals": totals}
    finally:
        store.close()


def table_stats(snapshot: dict[str, Any], seconds: float) -> dict[str, dict[str, Any]]:
    out = {}
    for table, t in snapshot["tables"].items():
        out[table] = {
            "inserts": t["inserts"], "rows": t["rows"],
            "inserts_per_s": round(rate(t["inserts"], seconds), 3),
            "rows_per_insert": round(rate(t["rows"], t["inserts"]), 1),
            "mean_insert_ms": round(rate(t["seconds"] * 1000, t["inserts"]), 2),
        }
    return out


def run_to_done(
    name: str, cmd: list[str], run_dir: Path, children: list[Child], phases: dict[str, float],
    *, timeout: float,
) -> tuple[Child, dict[str, Any]]:
    """Run a child phase until its status has ``done_at``; its seconds go to ``phases``."""
    child = Child(name, cmd, run_dir)
    children.append(child)
    started = time.perf_counter()
    status = child.wait_for(f"{name} done", lambda s: s.get("done_at"), timeout=timeout)
    phases[f"{name}_s"] = round(time.perf_counter() - started, 2)
    child.stop(30)
    return child, status


def run(args: argparse.Namespace, run_dir: Path, children: list[Child]) -> dict[str, Any]:
    started = time.monotonic()
    phases: dict[str, float] = {}
    broker = EmbeddedBroker.start()
    children.append(broker)  # type: ignore[arg-type]  # stopped by main() like the others
    bootstrap = broker.bootstrap_servers
    asyncio.run(ensure_topics(client_options(bootstrap), {
        RAW_TOPIC: args.partitions, DEAD_TOPIC: args.partitions, BASELINE_TOPIC: args.partitions,
    }))
    log(f"broker {bootstrap}, run dir {run_dir}")

    # 1. catalog, applied with CatalogService to the worker's (fresh) store
    doc = build_catalog(args.subscriptions)
    catalog_path = run_dir / "catalog.json"
    catalog_path.write_text(json.dumps(doc))
    meterline_dir = run_dir / "meterline"
    t = time.perf_counter()
    store = ChdbStore(meterline_dir / "chdb")
    store.ensure_schema()
    CatalogService(store).apply_document(ORG, doc)
    store.close()
    phases["catalog_apply_s"] = round(time.perf_counter() - t, 2)
    log(f"catalog: {args.subscriptions} subscriptions applied in {phases['catalog_apply_s']}s")

    # 2. backlog
    stream = EventStream(subscriptions=args.subscriptions, seed=args.seed,
                         dup_ratio=args.dup_ratio, avro_ratio=args.avro_ratio)
    baseline_events = min(args.baseline_events, args.events)
    log(f"producing {args.events:,} events (+{baseline_events:,} to the baseline topic)")
    produce_s, baseline_tally = produce_backlog(bootstrap, stream, args.events, "bt",
                                                baseline=baseline_events)
    backlog_tally = asdict(stream.tally)
    phases["produce_s"] = round(produce_s, 2)
    log(f"produced in {produce_s:.1f}s: {backlog_tally}")

    # 3. throughput: one worker process drains the backlog
    worker = Child("worker", [
        "bench.worker", "--bootstrap", bootstrap, "--topic", RAW_TOPIC,
        "--dead-letter-topic", DEAD_TOPIC, "--group", "bench-meterline",
        "--data-dir", str(meterline_dir), "--control", str(run_dir / "control.json"),
        "--target", str(args.events), "--batch-max-events", str(args.batch_max_events),
        "--batch-max-seconds", str(args.batch_max_seconds),
    ], run_dir)
    children.append(worker)
    t = time.perf_counter()
    status = worker.wait_for("target", lambda s: s.get("target_reached_at"),
                             timeout=max(180.0, args.events / 2_000))
    phases["worker_drain_s"] = round(time.perf_counter() - t, 2)
    seconds = status["target_reached_at"] - status["first_consumed_at"]
    at_target = status["at_target"]
    throughput = rate(args.events, seconds)
    batches = at_target["stats"]["batches"]
    log(f"meterline: {args.events:,} events in {seconds:.2f}s = {throughput:,.0f} events/s "
        f"({batches} batches)")

    # 4. freshness at half the measured maximum rate
    fresh_rate = max(50.0, throughput / 2)
    write_json(run_dir / "control.json", {"freshness_from_ms": int(time.time() * 1000)})
    time.sleep(0.6)  # the worker reads the control file every 0.25 s
    log(f"freshness: {fresh_rate:,.0f} events/s for {args.freshness_seconds}s")
    fresh_sent, fresh_s = paced(bootstrap, stream, fresh_rate, args.freshness_seconds)
    total = args.events + fresh_sent
    worker.wait_for("freshness events", lambda s: s["stats"]["consumed"] >= total, timeout=180)
    write_json(run_dir / "control.json", {"freshness_from_ms": 0})

    # 5. top-up to --read-events, then stop the worker
    read_events = max(args.read_events or args.events, total)
    if read_events > total:
        log(f"top-up: {read_events - total:,} more events for the billing reads")
        produce_backlog(bootstrap, stream, read_events - total, "rd")
        total = read_events
        worker.wait_for("top-up", lambda s: s["stats"]["consumed"] >= total,
                        timeout=max(300.0, (read_events - args.events) / 2_000))
    worker.stop()
    final = worker.status()
    if worker.process.returncode != 0 or not final.get("final"):
        raise RuntimeError(f"worker did not stop cleanly ({worker.process.returncode}):\n"
                           f"{worker.log_tail()}")
    peak_mb = max(worker.peak_kb, final.get("vm_hwm_kb", 0)) / 1024
    log(f"worker stopped; peak RSS {peak_mb:.0f} MB")

    # 6. billing reads on the stored data (the worker released the data directory)
    reads = billing_reads(meterline_dir, args.subscriptions, args.reads, args.seed + 1)
    log(f"billing reads: {reads}")
    tally = asdict(stream.tally)
    store_totals = reads["store_totals"]
    exact = store_totals == {"consumed": tally["events"],
                             "stored": tally["events"] - tally["duplicates"],
                             "duplicates": tally["duplicates"], "dead_letters": 0}

    # 7. the Faust per-event baseline, alone on the machine
    log(f"baseline: Faust per-event agent on {baseline_events:,} events")
    baseline, bstatus = run_to_done("baseline", [
        "bench.baseline", "--bootstrap", bootstrap, "--topic", BASELINE_TOPIC,
        "--data-dir", str(run_dir / "baseline"), "--catalog", str(catalog_path),
        "--events", str(baseline_events),
    ], run_dir, children, phases, timeout=max(180.0, baseline_events / 500))
    bseconds = bstatus["done_at"] - bstatus["first_consumed_at"]
    brate = rate(baseline_events, bseconds)
    ratio = rate(throughput, brate)
    log(f"baseline: {baseline_events:,} events in {bseconds:.2f}s = {brate:,.0f} events/s; "
        f"ratio {ratio:.2f}")

    # 8. the columnar happy-path ceiling, alone on the machine, on the same backlog
    ceiling = None
    ceiling_events = args.events if args.ceiling_events < 0 else args.ceiling_events
    if ceiling_events:
        log(f"ceiling: columnar happy path on {ceiling_events:,} events")
        _, ceiling = run_to_done("ceiling", [
            "bench.ceiling", "--bootstrap", bootstrap, "--topic", RAW_TOPIC,
            "--events", str(ceiling_events), "--data-dir", str(run_dir / "ceiling"),
            "--catalog", str(catalog_path), "--broker-pid", str(broker.process.pid),
        ], run_dir, children, phases, timeout=max(180.0, ceiling_events / 5_000))
        ceiling.pop("done_at")
        ceiling["ratio_to_meterline"] = round(rate(ceiling["events_per_s"], throughput), 2)
        log(f"ceiling: {ceiling['events_per_s']:,.0f} events/s "
            f"({ceiling['ratio_to_meterline']:.2f}x Meterline)")

    inserts = table_stats(at_target, seconds)
    fresh = final.get("freshness_ms", {})
    result: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "machine": machine(),
        "config": {
            "events": args.events, "baseline_events": baseline_events,
            "freshness_seconds": args.freshness_seconds, "read_events": read_events,
            "reads": args.reads, "subscriptions": args.subscriptions,
            "partitions": args.partitions, "avro_ratio": args.avro_ratio,
            "dup_ratio": args.dup_ratio, "seed": args.seed,
            "batch_max_events": args.batch_max_events or "PipelineConfig default",
            "batch_max_seconds": args.batch_max_seconds or "PipelineConfig default",
            "ceiling_events": ceiling_events,
        },
        "workload": {"backlog": backlog_tally, "baseline_prefix": baseline_tally,
                     "all_phases": tally, "produce_seconds": round(produce_s, 2),
                     "produce_events_per_s": round(rate(args.events, produce_s))},
        "meterline": {
            "events": args.events, "seconds": round(seconds, 3),
            "events_per_s": round(throughput, 1), "batches": batches,
            "events_per_batch": round(rate(args.events, batches), 1),
            "stats_at_target": at_target["stats"],
            "cpu_seconds": at_target.get("cpu_seconds"),
            "cpu_cores_used": round(rate(at_target.get("cpu_seconds", 0), seconds), 2),
            "step_seconds": at_target.get("steps", {}),
            "dedup_lookups": at_target["dedup_lookups"],
            "dedup_lookup_seconds": at_target["dedup_lookup_seconds"],
            "peak_rss_mb": round(peak_mb, 1),
            "store_totals": store_totals, "exact": exact,
        },
        "baseline": {
            "events": baseline_events, "prefix": baseline_events < args.events,
            "seconds": round(bseconds, 3), "events_per_s": round(brate, 1),
            "cpu_cores_used": round(rate(bstatus.get("cpu_seconds", 0), bseconds), 2),
            "dedup": "in-memory set", "stored": bstatus["stored"],
            "duplicates": bstatus["duplicates"], "dead_letters": bstatus["dead_letters"],
            "inserts": bstatus["inserts"], "insert_rows": bstatus["insert_rows"],
            "peak_rss_mb": round(max(baseline.peak_kb, bstatus.get("vm_hwm_kb", 0)) / 1024, 1),
        },
        "ratio": round(ratio, 3),
        "ceiling": ceiling,
        "inserts": inserts,
        "freshness": {
            "target_events_per_s": round(fresh_rate, 1), "sent": fresh_sent,
            "achieved_events_per_s": round(rate(fresh_sent, fresh_s), 1),
            "seconds": round(fresh_s, 2), "samples": final.get("freshness_samples", 0),
            "p50_ms": fresh.get("p50"), "p99_ms": fresh.get("p99"), "max_ms": fresh.get("max"),
            "batches": final.get("freshness_batches", {}),
            "definition": "per message: wall time when Pipeline.commit_batch returned for its "
                          "batch (roll-ups inserted, done manifest row written, offsets "
                          "committed) minus its Kafka CreateTime stamped by the producer",
        },
        "billing_read": {"events_stored": total, **{k: v for k, v in reads.items()
                                                     if k != "store_totals"}},
        "phases": phases,
    }
    result["targets"] = evaluate(result)
    result["total_seconds"] = round(time.monotonic() - started, 1)
    return result


def evaluate(r: dict[str, Any]) -> list[dict[str, Any]]:
    inserts = r["inserts"]
    worst_rate = max((t["inserts_per_s"] for t in inserts.values()), default=0.0)
    data = {t: inserts[t]["rows_per_insert"] for t in DATA_TABLES if t in inserts}
    fewest_rows = min(data.values(), default=0.0)
    p99 = r["freshness"]["p99_ms"]
    checks = [
        ("throughput", f">= {TARGETS['throughput_events_per_s']:,} events/s",
         r["meterline"]["events_per_s"],
         r["meterline"]["events_per_s"] >= TARGETS["throughput_events_per_s"]),
        ("ratio vs Faust baseline", f">= {TARGETS['ratio']:g}x", r["ratio"],
         r["ratio"] >= TARGETS["ratio"]),
        ("INSERTs/s, worst table", f"<= {TARGETS['inserts_per_s_per_table']:g}/s", worst_rate,
         worst_rate <= TARGETS["inserts_per_s_per_table"]),
        ("rows/INSERT, fewest (data tables)", f">= {TARGETS['rows_per_insert']:,}", fewest_rows,
         fewest_rows >= TARGETS["rows_per_insert"]),
        ("freshness p99 @ half max rate", f"<= {TARGETS['freshness_p99_ms']:,} ms", p99,
         p99 is not None and p99 <= TARGETS["freshness_p99_ms"]),
        ("billing read p99", f"<= {TARGETS['billing_read_p99_ms']} ms",
         r["billing_read"].get("p99_ms"),
         (r["billing_read"].get("p99_ms") or 1e9) <= TARGETS["billing_read_p99_ms"]),
        ("peak RSS, worker", f"<= {TARGETS['peak_rss_mb']} MB", r["meterline"]["peak_rss_mb"],
         r["meterline"]["peak_rss_mb"] <= TARGETS["peak_rss_mb"]),
    ]
    return [{"name": n, "target": t, "value": v, "pass": bool(ok)} for n, t, v, ok in checks]


def render(r: dict[str, Any]) -> str:
    m, b, f, br = r["machine"], r["baseline"], r["freshness"], r["billing_read"]
    me, cfg, wl = r["meterline"], r["config"], r["workload"]["backlog"]
    verdict = {t["name"]: "PASS" if t["pass"] else "FAIL" for t in r["targets"]}
    lines = [
        f"Meterline benchmark {r['timestamp']}  ({r['total_seconds']:.0f} s)",
        f"machine: {m['nproc']} CPUs, {m['cpu_model']}, Python {m['python']}, "
        f"{m['mem_total_mb']:,} MB RAM",
        f"workload: {cfg['events']:,} events ({wl['avro']:,} Avro, {wl['duplicates']:,} "
        f"duplicates), {cfg['subscriptions']:,} subscriptions, {cfg['partitions']} partitions; "
        f"exact totals: {me['exact']}",
        "",
        f"{'measure':<38}{'value':>22}  {'target':<22}result",
        "-" * 90,
    ]

    def row(name: str, value: str, target: str = "", result: str = "") -> None:
        lines.append(f"{name:<38}{value:>22}  {target:<22}{result}")

    row("Meterline, 1 worker process", f"{me['events_per_s']:,.0f} ev/s",
        f">= {TARGETS['throughput_events_per_s']:,} ev/s", verdict["throughput"])
    prefix = f"{b['events']:,}-event prefix" if b["prefix"] else "all events"
    row(f"Faust per-event baseline ({prefix})", f"{b['events_per_s']:,.0f} ev/s")
    row("ratio Meterline / baseline", f"{r['ratio']:.2f}x", f">= {TARGETS['ratio']:g}x",
        verdict["ratio vs Faust baseline"])
    for name, value in cpu_per_event(me).items():
        row(f"  CPU us/event: {name}", value)
    if c := r.get("ceiling"):
        row("columnar happy-path ceiling (bound)", f"{c['events_per_s']:,.0f} ev/s",
            f"{c['ratio_to_meterline']:.2f}x Meterline")
    for table, t in sorted(r["inserts"].items()):
        note = "" if table in DATA_TABLES else " (manifest)"
        ok = t["inserts_per_s"] <= TARGETS["inserts_per_s_per_table"] and (
            table not in DATA_TABLES or t["rows_per_insert"] >= TARGETS["rows_per_insert"])
        row(f"  INSERT {table}{note}",
            f"{t['inserts_per_s']:.2f}/s x {t['rows_per_insert']:,.0f} rows",
            "<= 1/s, >= 10k rows" if not note else "<= 1/s", "PASS" if ok else "FAIL")
    row(f"freshness p50/p99 @ {f['achieved_events_per_s']:,.0f} ev/s",
        f"{_ms(f['p50_ms'])} / {_ms(f['p99_ms'])} ms", f"p99 <= {TARGETS['freshness_p99_ms']:,} ms",
        verdict["freshness p99 @ half max rate"])
    row(f"billing read p50/p99 ({br['events_stored']:,} ev)",
        f"{br.get('p50_ms', 0):.1f} / {br.get('p99_ms', 0):.1f} ms",
        f"p99 <= {TARGETS['billing_read_p99_ms']} ms",
        verdict["billing read p99"])
    row("peak RSS, worker process", f"{me['peak_rss_mb']:,.0f} MB", "<= 1,024 MB",
        verdict["peak RSS, worker"])
    return "\n".join(lines)


def cpu_per_event(me: dict[str, Any]) -> dict[str, str]:
    """CPU microseconds per event: each pure step on the preparing thread (with its wall time
    when the thread waited), then the rest of the worker process (fetch, INSERTs and merges,
    commits, the event loop), from the process's CPU time."""
    steps, events = me.get("step_seconds", {}), me.get("events") or 1
    out: dict[str, str] = {}
    prepare_cpu = 0.0
    for step in PREPARE_STEPS:
        cpu = steps.get(f"cpu_{step}")
        if cpu is None:
            continue
        prepare_cpu += cpu
        out[step] = f"{cpu / events * 1e6:.1f} (wall {steps.get(step, 0) / events * 1e6:.1f})"
    if out:
        out["prepare, all steps"] = f"{prepare_cpu / events * 1e6:.1f}"
    if me.get("cpu_seconds") is not None:
        rest = me["cpu_seconds"] - prepare_cpu
        out["rest of the worker"] = f"{rest / events * 1e6:.1f}"
        out["worker process, total"] = f"{me['cpu_seconds'] / events * 1e6:.1f}"
    return out


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=2_000_000, help="backlog size (2M)")
    p.add_argument("--baseline-events", type=int, default=200_000,
                   help="events for the Faust baseline, a prefix of the same events (200k)")
    p.add_argument("--freshness-seconds", type=float, default=20.0)
    p.add_argument("--read-events", type=int, default=0,
                   help="events stored before the billing reads (default: --events; the "
                        "documented 10M setting is --read-events 10000000)")
    p.add_argument("--reads", type=int, default=300, help="billing reads timed")
    p.add_argument("--subscriptions", type=int, default=1_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--avro-ratio", type=float, default=0.2)
    p.add_argument("--dup-ratio", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--batch-max-events", type=int, default=0,
                   help="override PipelineConfig.batch_max_events (default: its default)")
    p.add_argument("--batch-max-seconds", type=float, default=0.0,
                   help="override PipelineConfig.batch_max_seconds (default: its default)")
    p.add_argument("--ceiling-events", type=int, default=-1,
                   help="events for the columnar happy-path ceiling, read from the same "
                        "backlog (default: --events; 0 skips it)")
    p.add_argument("--out", default=str(REPO / "bench" / "results"),
                   help="directory for <timestamp>.json")
    p.add_argument("--keep", action="store_true", help="keep the tmp run directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir = Path(tempfile.mkdtemp(prefix="meterline-bench-"))
    children: list[Any] = []
    try:
        result = run(args, run_dir, children)
    finally:
        for child in reversed(children):
            child.stop()
        if args.keep:
            log(f"kept {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
