"""Prometheus metrics of a worker, on an explicit registry (one per app, a fresh one per test).

Label sets are bounded: topic, partition, outcome, reason, table, step. Never a label per
subscription, customer or transaction.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_SIZE_BUCKETS = (1, 10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000)
SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every series Meterline exports, prefixed ``meterline_``."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
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
            "meterline_batch_size", "Messages per committed batch.", buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.step_seconds = Histogram(
            "meterline_step_seconds", "Time per pipeline step and batch.", ["step"],
            buckets=SECONDS_BUCKETS, registry=r,
        )
        self.insert_rows = Counter(
            "meterline_insert_rows_total", "Rows inserted per table.", ["table"], registry=r,
        )
        self.insert_seconds = Histogram(
            "meterline_insert_seconds", "Latency of one INSERT per table.", ["table"],
            buckets=SECONDS_BUCKETS, registry=r,
        )
        self.store_errors = Counter(
            "meterline_store_errors_total", "Store calls that failed (each is retried).",
            ["operation"], registry=r,
        )
        self.replayed_batches = Counter(
            "meterline_replayed_batches_total", "Unfinished batches replayed after a restart.",
            registry=r,
        )
        self.reconciliation_mismatch = Gauge(
            "meterline_reconciliation_mismatch",
            "1 when a partition's counts do not reconcile (see meterline reconcile).",
            ["topic", "partition"], registry=r,
        )
        self.catalog_version = Gauge(
            "meterline_catalog_version", "Version of the in-memory catalog.", registry=r,
        )
