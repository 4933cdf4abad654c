"""Retrying store calls: the pipeline never drops a batch, it waits for the store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sinks.store import StoreDataError, StoreError
from streams.health import PipelineHealth
from streams.metrics import Metrics

log = logging.getLogger("meterline.pipeline")


class PipelineStopped(RuntimeError):
    """The pipeline is stopping: the batch in hand is abandoned and replayed at next start."""


class StoreRetry:
    """Calls a store function until it succeeds, backing off exponentially.

    Every failure is reported to ``health`` (stall detection) and counted; ``abort`` (set when
    the worker stops) ends the wait with :class:`PipelineStopped`."""

    def __init__(
        self, *, initial_seconds: float, max_seconds: float, abort: threading.Event,
        health: PipelineHealth, metrics: Metrics, on_retry: Callable[[], None] = lambda: None,
    ):
        self.initial_seconds = initial_seconds
        self.max_seconds = max_seconds
        self.abort = abort
        self.health = health
        self.metrics = metrics
        self.on_retry = on_retry

    def __call__(self, what: str, fn: Callable[..., Any], *args: Any,
                 refusals: bool = False) -> Any:
        """``fn(*args)``, retried until it succeeds.

        ``refusals``: a :class:`StoreDataError` (the data refused, which a retry cannot fix)
        is raised to the caller instead of retried."""
        delay = self.initial_seconds
        operation = what.split(" ")[0]
        retrying = False
        while True:
            if self.abort.is_set():
                raise PipelineStopped(what)
            if retrying:
                self.metrics.store_retries.labels(operation).inc()
            try:
                result = fn(*args)
            except StoreError as exc:
                if refusals and isinstance(exc, StoreDataError):
                    raise
                self.health.store_failed(str(exc))
                self.on_retry()
                self.metrics.store_errors.labels(operation).inc()
                log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
                self.abort.wait(delay)
                delay = min(delay * 2, self.max_seconds)
                retrying = True
            else:
                self.health.store_ok()
                return result
