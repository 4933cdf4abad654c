"""The status and reconciliation answers of a running worker (``GET /api/v1/meterline/status``
and ``…/reconcile``, ``meterline reconcile``, the reconciliation gauge)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

from aggregation.reconciliation import LogView, reconcile_report
from services.catalog import CatalogService
from sinks.store import OpenBatch, OperationsStore


class ReportsStore(OperationsStore, Protocol):
    """What the reports read: the operations views, and the open batches of the manifest."""

    def open_batches(self, topic: str) -> list[OpenBatch]:
        """Batches of any log epoch begun but neither done nor rolled back, oldest first."""
        ...


class PipelineView(Protocol):
    """What the reports read of the running batch pipeline (``streams.pipeline.Pipeline``)."""

    log_epoch: str

    @property
    def stats(self) -> Any:
        """The pipeline's counters: a dataclass."""
        ...

    async def log_offsets(self) -> dict[int, tuple[int, int]]:
        """Per partition of the raw topic: the broker's (first, end) offsets."""
        ...


@dataclasses.dataclass
class Reports:
    """The status and reconciliation answers of a running worker.

    ``pipeline`` gives the running pipeline (None until it has started) and ``readiness``
    what ``/ready`` answers."""

    store: ReportsStore
    catalog: CatalogService
    raw_topic: str
    stall_seconds: float
    pipeline: Callable[[], PipelineView | None] = lambda: None
    readiness: Callable[[], dict[str, Any]] = lambda: {"ready": False, "checks": {}}

    async def status(self) -> dict[str, Any]:
        """Pipeline counters, per-partition counts of committed batches, readiness."""
        counts = await asyncio.to_thread(self.store.partition_counts)
        pipeline = self.pipeline()
        return {
            "log_epoch": pipeline.log_epoch if pipeline else None,
            "catalog_version": self.catalog.version,
            "catalog_skipped_versions": self.catalog.skipped_versions,
            "pipeline": dataclasses.asdict(pipeline.stats) if pipeline else {},
            "partitions": [dataclasses.asdict(c) for c in counts],
            "reconciled": all(c.consumed == c.stored + c.duplicates + c.dead_letters
                              for c in counts),
            "readiness": self.readiness(),
        }

    async def reconcile(self) -> dict[str, Any]:
        """The reconciliation report (see :func:`aggregation.reconciliation.reconcile_report`),
        with the broker's log of the raw topic and the dedup index's size."""
        store, topic = self.store, self.raw_topic
        pipeline = self.pipeline()
        log_view = None
        if pipeline is not None:
            log_view = LogView(pipeline.log_epoch, topic, await pipeline.log_offsets())
        report = reconcile_report(
            await asyncio.to_thread(store.reconcile),
            open_batches=await asyncio.to_thread(store.open_batches, topic),
            rolled_back=await asyncio.to_thread(store.rolled_back_batches),
            log=log_view, now_ms=int(time.time() * 1000),
            open_grace_ms=int(self.stall_seconds * 1000),
        )
        report["dedup_index"] = await asyncio.to_thread(store.dedup_index_stats)
        return report
