"""The benchmark's Meterline worker: ONE process hosting the real :class:`streams.pipeline.Pipeline`
on a chdb store and the catalog, exactly as ``meterline up`` wires it (no API, no Faust web).

Only observation is added, in a subclass and a store wrapper, never in the hot path's code:

* ``first_consumed_at``: wall time of the first non-empty ``getmany`` (wrapping the consumer's
  method after :meth:`Pipeline.start`);
* ``target_reached_at``: wall time when :meth:`Pipeline.commit_batch` returns (done manifest row
  written, Kafka offsets committed) and the committed count reaches ``--target``;
* INSERT counts, rows and seconds per table (a wrapper around the store's ``insert``);
* freshness: for every message whose Kafka timestamp is at or after ``freshness_from_ms`` (set
  by the orchestrator in the control file), ``commit time - Kafka CreateTime`` in ms.

It writes its status as JSON to ``--status`` every 0.25 s and once more at exit (SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import time
from array import array
from collections import defaultdict
from pathlib import Path
from typing import Any

from services.catalog import CatalogService
from sinks.batch_tables import table_of
from sinks.chdb_store import ChdbStore
from streams.kafka import client_options, cluster_id
from streams.metrics import STEPS
from streams.pipeline import Pipeline, PipelineConfig


def vm_hwm_kb(pid: int | str = "self") -> int:
    """Peak resident set size (VmHWM) of a process, in kB; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads, chdb's included)."""
    times = os.times()
    return times.user + times.system


def percentiles(values: list[float], points: tuple[float, ...] = (50, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (``p50``, ``p99``) and the max; empty input gives {}."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {}
    for p in points:
        rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
        out[f"p{p:g}"] = ordered[rank]
    out["max"] = ordered[-1]
    return out


class CountingStore:
    """The real store, with INSERTs and dedup lookups counted per table."""

    def __init__(self, inner: ChdbStore):
        self.inner = inner
        self.inserts: dict[str, int] = defaultdict(int)
        self.rows: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.lookups = 0
        self.lookup_seconds = 0.0

    def write_part(self, batch: Any, part: str, token: str) -> None:
        started = time.perf_counter()
        self.inner.write_part(batch, part, token)
        self._count(table_of(part), batch.rows(part), started)

    def write_marker(self, batch_id: str, log_epoch: str, topic: str, state: str,
                     tallies: Any, written_at_ms: int) -> None:
        started = time.perf_counter()
        self.inner.write_marker(batch_id, log_epoch, topic, state, tallies, written_at_ms)
        self._count("batch_begins" if state == "begin" else "batches", len(tallies), started)

    def _count(self, table: str, rows: int, started: float) -> None:
        if rows:  # the store skips empty tables: not an INSERT
            self.inserts[table] += 1
            self.rows[table] += rows
            self.seconds[table] += time.perf_counter() - started

    def find_seen(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.find_seen(*args)
        finally:
            self.lookups += 1
            self.lookup_seconds += time.perf_counter() - started

    def snapshot(self) -> dict[str, Any]:
        return {
            "tables": {t: {"inserts": self.inserts[t], "rows": self.rows[t],
                           "seconds": round(self.seconds[t], 4)} for t in sorted(self.inserts)},
            "dedup_lookups": self.lookups,
            "dedup_lookup_seconds": round(self.lookup_seconds, 4),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class BenchPipeline(Pipeline):
    """The real pipeline, observed (see the module docstring)."""

    def __init__(self, *, target: int, counting: CountingStore, **kwargs: Any):
        super().__init__(store=counting, **kwargs)
        self.target = target
        self.counting = counting
        self.first_consumed_at: float | None = None
        self.cpu_at_first = 0.0
        self.target_reached_at: float | None = None
        self.at_target: dict[str, Any] | None = None
        self.freshness_from_ms = 0
        self.latencies_ms: list[int] = []
        # (size, prepare s, commit s, slowest latency ms) of each batch of the freshness phase
        self.fresh_batches: list[tuple[int, float, float, int]] = []
        self.kafka_ms: dict[str, array] = {}  # batch id → Kafka timestamp of each message

    def _add_pending(self, chunk: Any) -> None:
        if self.first_consumed_at is None and chunk.records:
            self.first_consumed_at = time.time()
            self.cpu_at_first = cpu_seconds()
        super()._add_pending(chunk)

    def prepare(
        self, messages: Any, also_seen: Any = None, rejected: Any = None, *, trial: bool = False
    ) -> Any:
        started = time.perf_counter()
        batch = super().prepare(messages, also_seen, rejected, trial=trial)
        batch.timings["bench_prepare"] = time.perf_counter() - started
        # The pipeline keeps only a sample of Kafka timestamps; the bench times every message.
        self.kafka_ms[batch.batch_id] = array("q", [m.timestamp for m in messages])
        return batch

    async def commit_batch(self, batch: Any, *, commit_kafka: bool) -> Any:
        started = time.perf_counter()
        batch = await super().commit_batch(batch, commit_kafka=commit_kafka)
        now = time.time()
        if self.freshness_from_ms:
            now_ms = int(now * 1000)
            since = self.freshness_from_ms
            before = len(self.latencies_ms)
            kafka_ms = self.kafka_ms.pop(batch.batch_id, ())
            self.latencies_ms.extend(now_ms - ms for ms in kafka_ms if ms >= since)
            if len(self.latencies_ms) > before:
                self.fresh_batches.append(
                    (len(kafka_ms), batch.timings.get("bench_prepare", 0.0),
                     time.perf_counter() - started, max(self.latencies_ms[before:]))
                )
        else:
            self.kafka_ms.pop(batch.batch_id, None)
        if self.target_reached_at is None and self.stats.consumed >= self.target:
            self.target_reached_at = now
            self.at_target = {**self.counting.snapshot(), "stats": self._stats(),
                              "steps": self._steps(),
                              "cpu_seconds": round(cpu_seconds() - self.cpu_at_first, 3)}
        return batch

    def _stats(self) -> dict[str, Any]:
        s = self.stats
        return {"batches": s.batches, "consumed": s.consumed, "stored": s.stored,
                "duplicates": s.duplicates, "dead_letters": s.dead_letters,
                "replayed_batches": s.replayed_batches, "store_retries": s.store_retries}

    def _steps(self) -> dict[str, float]:
        """Seconds spent per pipeline step, from the pipeline's own metrics registry."""
        out: dict[str, float] = {}
        for step in STEPS:
            try:
                value = self.metrics.registry.get_sample_value(
                    "meterline_step_seconds_sum", {"step": step}
                )
            except Exception:  # the metrics module is not ours; never fail the bench on it
                value = None
            if value is not None:
                out[step] = round(value, 4)
            with contextlib.suppress(Exception):  # the preparing thread's CPU per pure step
                cpu = self.metrics.registry.get_sample_value(
                    "meterline_step_cpu_seconds_total", {"step": step})
                if cpu is not None:
                    out[f"cpu_{step}"] = round(cpu, 4)
        with contextlib.suppress(Exception):  # timed full collections (streams.gc_policy)
            value = self.metrics.registry.get_sample_value("meterline_gc_seconds_sum")
            if value is not None:
                out["gc"] = round(value, 4)
        return out

    def status(self, *, final: bool = False) -> dict[str, Any]:
        out = {
            "pid": os.getpid(),
            "time": time.time(),
            "ready": self._fetcher is not None,
            "final": final,
            "target": self.target,
            "first_consumed_at": self.first_consumed_at,
            "target_reached_at": self.target_reached_at,
            "at_target": self.at_target,
            "stats": self._stats(),
            "inserts": self.counting.snapshot(),
            "steps": self._steps(),
            "freshness_samples": len(self.latencies_ms),
            "vm_hwm_kb": vm_hwm_kb(),
        }
        if final:
            out["freshness_ms"] = percentiles(self.latencies_ms)
            fb = self.fresh_batches
            if fb:
                out["freshness_batches"] = {
                    "batches": len(fb),
                    "mean_events": round(sum(b[0] for b in fb) / len(fb), 1),
                    "mean_prepare_s": round(sum(b[1] for b in fb) / len(fb), 3),
                    "mean_commit_s": round(sum(b[2] for b in fb) / len(fb), 3),
                    # in commit order: [events, prepare s, commit s, its slowest latency ms]
                    "each": [[b[0], round(b[1], 3), round(b[2], 3), b[3]] for b in fb],
                }
        return out


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


async def serve(args: argparse.Namespace) -> None:
    store = ChdbStore(Path(args.data_dir) / "chdb")
    store.ensure_schema()
    catalog = CatalogService(store)
    catalog.load()
    kafka = client_options(args.bootstrap)
    epoch = await cluster_id(kafka)
    defaults = PipelineConfig(topic="", dead_letter_topic="", group_id="")
    pipeline = BenchPipeline(
        target=args.target,
        counting=CountingStore(store),
        config=PipelineConfig(
            topic=args.topic, dead_letter_topic=args.dead_letter_topic, group_id=args.group,
            batch_max_events=args.batch_max_events or defaults.batch_max_events,
            batch_max_seconds=args.batch_max_seconds or defaults.batch_max_seconds,
        ),
        kafka_options=kafka, log_epoch=epoch, catalog=lambda: catalog.index,
    )
    status_path, control_path = Path(args.status), Path(args.control)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await pipeline.start()
    run = asyncio.create_task(pipeline.run())
    try:
        while not stopping.is_set() and not run.done():
            if control_path.exists():
                try:
                    control = json.loads(control_path.read_text())
                    pipeline.freshness_from_ms = int(control.get("freshness_from_ms") or 0)
                except (OSError, ValueError):
                    pass
            write_json(status_path, pipeline.status())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.25)
    finally:
        await pipeline.stop()
        await asyncio.wait_for(run, 60)
        write_json(status_path, pipeline.status(final=True))
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--dead-letter-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--batch-max-events", type=int, default=0)
    parser.add_argument("--batch-max-seconds", type=float, default=0.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
