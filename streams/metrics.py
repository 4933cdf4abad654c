"""Prometheus metrics of a worker, on an explicit registry (one per app, a fresh one per test).

Label sets are bounded: topic, partition, outcome, reason, table, step, operation, event, route
(the route *pattern*), method and status. Never a label per subscription, customer or
transaction.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_SIZE_BUCKETS = (1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)
SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Produced → visible in aggregates: the 2 s objective sits on a bucket boundary.
FRESHNESS_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 1800)

# The steps of the hot path, in order (``meterline_step_seconds{step=…}``).
STEPS = ("parse", "dedup", "enrich", "rollup", "wire", "process", "insert", "commit")

# How many messages of a batch one freshness observation stands for (see Pipeline._observe).
FRESHNESS_SAMPLE_EVERY = 100


class Metrics:
    """Every series Meterline exports, prefixed ``meterline_``."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self._hot_path(self.registry)
        self._timeline(self.registry)
        self._progress(self.registry)
        self._store_and_catalog(self.registry)
        self._http(self.registry)

    def _hot_path(self, r: CollectorRegistry) -> None:
        """Messages, dead letters, batch sizes, step times, INSERTs."""
        self.messages = Counter(
            "meterline_messages_total",
            "Raw messages by outcome: consumed = stored + duplicate + dead_letter.",
            ["topic", "partition", "outcome"], registry=r,
        )
        self.dead_letters = Counter(
            "meterline_dead_letters_total", "Dead letters by reason code.", ["reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "meterline_batch_size", "Messages per committed batch and partition.",
            buckets=BATCH_SIZE_BUCKETS, registry=r,
        )
        self.step_seconds = Histogram(
            "meterline_step_seconds",
            "Time per pipeline step and batch: parse, dedup, enrich, rollup, wire (Arrow tables; "
            "process = the five together), insert (every ClickHouse write of the batch), "
            "commit (Kafka offsets).",
            ["step"], buckets=SECONDS_BUCKETS, registry=r,
        )
        self.step_cpu_seconds = Counter(
            "meterline_step_cpu_seconds",
            "CPU seconds of the preparing thread per pure step (parse, dedup, enrich, rollup, "
            "wire); less than meterline_step_seconds when the thread waits for the GIL or a "
            "core.",
            ["step"], registry=r,
        )
        self.gc_seconds = Histogram(
            "meterline_gc_seconds",
            "Duration of each timed full garbage collection (automatic collection is off in "
            "the worker; METERLINE_GC_COLLECT_SECONDS).",
            buckets=SECONDS_BUCKETS, registry=r,
        )
        self.insert_rows = Counter(
            "meterline_insert_rows_total", "Rows inserted per table.", ["table"], registry=r,
        )
        self.insert_seconds = Histogram(
            "meterline_insert_seconds", "Latency of one INSERT per table.", ["table"],
            buckets=SECONDS_BUCKETS, registry=r,
        )

    def _timeline(self, r: CollectorRegistry) -> None:
        """Freshness, watermark, the last batch, rebalances, replays and the dedup filter."""
        self.freshness = Histogram(
            "meterline_freshness_seconds",
            "Kafka message timestamp to its batch's commit (visible in the aggregates); one "
            f"observation per {FRESHNESS_SAMPLE_EVERY} messages of a batch, at least one per "
            "partition and batch.",
            buckets=FRESHNESS_BUCKETS, registry=r,
        )
        self.watermark = Gauge(
            "meterline_event_time_watermark_seconds",
            "Largest event timestamp (Unix seconds) committed per partition by this worker.",
            ["topic", "partition"], registry=r,
        )
        self.last_batch = Gauge(
            "meterline_last_batch_timestamp_seconds",
            "Unix time of this worker's last committed batch.", registry=r,
        )
        self.rebalances = Counter(
            "meterline_rebalances_total", "Consumer group rebalances seen by this worker.",
            ["event"], registry=r,
        )
        self.replayed_batches = Counter(
            "meterline_replayed_batches_total", "Unfinished batches replayed after a restart.",
            registry=r,
        )
        self.dedup_lookup_keys = Counter(
            "meterline_dedup_lookup_keys_total",
            "Identities looked up in the dedup index: those the in-memory filter may hold "
            "(duplicates and ~0.5% false positives); compare with consumed messages.",
            registry=r,
        )
        self.dedup_filter_identities = Gauge(
            "meterline_dedup_filter_identities",
            "Identities in the in-memory dedup filter (loaded at assignment, then added to).",
            registry=r,
        )

    def _progress(self, r: CollectorRegistry) -> None:
        """Lag, stalls, readiness, quarantines and rollbacks (streams.health, issue 16)."""
        self.consumer_lag = Gauge(
            "meterline_consumer_lag",
            "Messages in the partition not yet in a committed batch: the broker's end offset "
            "minus the next offset to commit, read from the broker on a timer.",
            ["topic", "partition"], registry=r,
        )
        self.pipeline_stalled = Gauge(
            "meterline_pipeline_stalled",
            "1 when an assigned partition has work and has made no progress for "
            "METERLINE_STALL_SECONDS, or the store has been failing that long.", registry=r,
        )
        self.ready = Gauge(
            "meterline_ready", "1 when the worker is ready (what /ready answers).", registry=r,
        )
        self.seconds_since_commit = Gauge(
            "meterline_seconds_since_commit",
            "Seconds since this worker last committed a batch of the partition (or, before "
            "its first, since the partition was assigned).",
            ["topic", "partition"], registry=r,
        )
        self.quarantined = Counter(
            "meterline_quarantined_messages_total",
            "Messages dead-lettered because the store refused their rows (value_out_of_range, "
            "storage_rejected); the rest of their batch is written.", registry=r,
        )
        self.rolled_back_batches = Counter(
            "meterline_rolled_back_batches_total",
            "Unfinished batches of a gone log epoch rolled back at start.", registry=r,
        )

    def _store_and_catalog(self, r: CollectorRegistry) -> None:
        """Store errors and retries, reconciliation, the catalog's version and age."""
        self.store_errors = Counter(
            "meterline_store_errors_total",
            "Store calls that failed: the pipeline's are retried, an API request's answer 503.",
            ["operation"], registry=r,
        )
        self.store_retries = Counter(
            "meterline_store_retries_total",
            "Store calls retried by the pipeline after a backoff.", ["operation"], registry=r,
        )
        self.reconciliation_mismatch = Gauge(
            "meterline_reconciliation_mismatch",
            "1 when a partition's counts do not reconcile (see meterline reconcile).",
            ["topic", "partition"], registry=r,
        )
        self.catalog_version = Gauge(
            "meterline_catalog_version", "Version of the in-memory catalog.", registry=r,
        )
        self.catalog_age = Gauge(
            "meterline_catalog_age_seconds",
            "Seconds since the last catalog change (NaN before the first one).", registry=r,
        )

    def _http(self, r: CollectorRegistry) -> None:
        """API requests and latency by route pattern, usage-read latency."""
        self.http_requests = Counter(
            "meterline_http_requests_total", "API requests by route pattern, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.http_seconds = Histogram(
            "meterline_http_request_seconds", "API request latency by route pattern and method.",
            ["route", "method"], buckets=SECONDS_BUCKETS, registry=r,
        )
        self.usage_read_seconds = Histogram(
            "meterline_usage_read_seconds",
            "Latency of one priced usage read (current_usage: pre-aggregates + billing core).",
            buckets=SECONDS_BUCKETS, registry=r,
        )

    def names(self) -> set[str]:
        """Every series name this registry exports (counters as ``_total``, histograms as
        ``_bucket``/``_sum``/``_count``, both with ``_created``)."""
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
        }
        return {
            family.name + suffix
            for family in self.registry.collect()
            for suffix in suffixes.get(family.type, ("",))
        }
