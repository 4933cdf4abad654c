"""The composition root: the one place that builds and wires everything of a worker.

The Faust app hosts the batch pipeline (``streams``) as a service and the HTTP API (``api``,
over the ``services``) on its web server; the store (``sinks``) is opened by the caller
(:mod:`meterline.stack`). Nothing below ``meterline`` imports it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import faust
import mode

from api.api_keys import ApiKeyApi
from api.dead_letters import DeadLetterApi
from api.handlers import Api
from api.lago import LagoControlApi
from api.routes import api_routes
from api.server import bind_routes
from meterline.settings import Settings
from services.api_keys import RELOAD_SECONDS, ApiKeyService, LiveKeyRing
from services.catalog import CatalogService
from services.dead_letters import DeadLetterService
from services.status import Reports
from services.usage import UsageService
from sinks.store import Store, StoreError
from streams.catalog_topic import TOPIC_CONFIG as CATALOG_TOPIC_CONFIG
from streams.catalog_topic import CatalogTopic
from streams.kafka import client_options, cluster_id, ensure_topics, rdkafka_connection
from streams.metrics import Metrics
from streams.pipeline import Pipeline, PipelineConfig
from streams.producer import KafkaEventPublisher

log = logging.getLogger("meterline.app")
EXIT_PIPELINE_FAILED = 70


@dataclasses.dataclass
class Runtime:
    """The live parts of a running worker, filled in as services start."""

    pipeline: Pipeline | None = None
    publisher: KafkaEventPublisher | None = None
    catalog_topic: CatalogTopic | None = None
    metrics: Metrics | None = None
    started: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def readiness(self) -> dict[str, Any]:
        """What ``/ready`` answers: each check, and ``ready`` when all pass.

        The API can take events (its Kafka producer is connected), the pipeline consumes (it
        has joined its group), the store takes writes (no store call is failing now) and no
        partition is stalled (see :mod:`streams.health`)."""
        pipeline = self.pipeline
        health = pipeline.health if pipeline else None
        stalled = health.stalled_partitions() if health else []
        checks = {
            "publisher": bool(self.publisher and self.publisher.started),
            "pipeline": bool(health and health.consuming),
            "store": bool(health and health.failing_since is None),
            "stalled_partitions": stalled,
        }
        ready = checks["publisher"] and checks["pipeline"] and checks["store"] and not stalled
        return {"ready": ready, "checks": checks}


def kafka_options_for(settings: Settings, bootstrap_servers: str) -> dict[str, Any]:
    """aiokafka connection options from the settings."""
    return client_options(
        bootstrap_servers,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=settings.kafka_sasl_password,
        ssl_cafile=settings.kafka_ssl_cafile,
    )


def fetch_connection_for(settings: Settings, bootstrap_servers: str) -> dict[str, str]:
    """The same connection in librdkafka's settings (the raw topic's fetcher)."""
    return rdkafka_connection(
        bootstrap_servers,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=settings.kafka_sasl_password,
        ssl_cafile=settings.kafka_ssl_cafile,
    )


def _credentials(settings: Settings) -> Any:
    if settings.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if settings.kafka_security_protocol == "SSL":
        import ssl

        return faust.SSLCredentials(ssl.create_default_context(cafile=settings.kafka_ssl_cafile))
    return None


def pipeline_config(settings: Settings) -> PipelineConfig:
    """What the hot path takes from the settings."""
    return PipelineConfig(
        topic=settings.raw_topic,
        dead_letter_topic=settings.dead_letter_topic,
        group_id=settings.consumer_group,
        batch_max_events=settings.batch_max_events,
        batch_max_seconds=settings.batch_max_seconds,
        dedup_window_days=settings.dedup_window_days,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        gc_collect_seconds=settings.gc_collect_seconds,
        stall_seconds=settings.stall_seconds,
    )


def faust_app(settings: Settings, bootstrap_servers: str) -> faust.App:
    """The Faust app: its consumer group, the broker and the web server's address."""
    session_s = settings.kafka_session_timeout_ms / 1000
    return faust.App(
        f"{settings.consumer_group}-app",
        broker=f"kafka://{bootstrap_servers}",
        broker_credentials=_credentials(settings),
        broker_session_timeout=session_s,
        broker_heartbeat_interval=max(0.1, session_s / 3),
        broker_rebalance_timeout=max(session_s, 10.0),
        datadir=str(Path(settings.data_dir) / "faust"),
        web_enabled=True,
        web_bind=settings.http_host,
        web_host=settings.http_host,
        web_port=settings.http_port,
        topic_partitions=1,
        topic_replication_factor=1,
        producer_acks=-1,
    )


@dataclasses.dataclass
class Worker:
    """Everything one worker's services share."""

    settings: Settings
    kafka: dict[str, Any]
    store: Store
    catalog: CatalogService
    publisher: KafkaEventPublisher
    metrics: Metrics
    runtime: Runtime
    reports: Reports
    key_ring: LiveKeyRing
    on_ready: Callable[[], None] | None = None


class PipelineService(mode.Service):
    """Creates topics, starts the API's producer and the catalog topic, runs the batch
    pipeline; announces the first time the worker is ready. ``worker`` is set on a subclass
    made per app (Faust instantiates registered service classes itself)."""

    worker: ClassVar[Worker]

    async def on_start(self) -> None:
        w, settings = self.worker, self.worker.settings
        await ensure_topics(
            w.kafka,
            {settings.raw_topic: settings.raw_topic_partitions,
             settings.dead_letter_topic: settings.raw_topic_partitions,
             settings.catalog_topic: 1},
            {settings.catalog_topic: CATALOG_TOPIC_CONFIG},
        )
        epoch = await cluster_id(w.kafka)
        await w.publisher.start()
        w.runtime.catalog_topic = CatalogTopic(w.kafka, settings.catalog_topic, w.catalog)
        await w.runtime.catalog_topic.start()
        w.runtime.pipeline = Pipeline(
            config=pipeline_config(settings),
            store=w.store,
            kafka_options=w.kafka,
            fetch_connection=fetch_connection_for(settings, w.kafka["bootstrap_servers"]),
            log_epoch=epoch,
            catalog=lambda: w.catalog.index,
            metrics=w.metrics,
        )
        await w.runtime.pipeline.start()
        w.runtime.started.set()
        log.info("pipeline started on %s (log epoch %s)", settings.raw_topic, epoch)

    @mode.Service.task
    async def _announce_ready(self) -> None:
        """Call ``on_ready`` once, when the worker first becomes ready."""
        while not self.worker.runtime.readiness()["ready"]:
            await asyncio.sleep(0.1)
        log.info("ready")
        if self.worker.on_ready is not None:
            self.worker.on_ready()

    @mode.Service.task
    async def _run(self) -> None:
        runtime = self.worker.runtime
        await runtime.started.wait()
        assert runtime.pipeline is not None
        try:
            await runtime.pipeline.run()
        except Exception:
            # Crash-and-restart: never keep serving with a dead pipeline. Whatever batch
            # was in hand is replayed by the next start (see streams.committer).
            log.exception("the pipeline failed; exiting so the supervisor restarts us")
            logging.shutdown()
            os._exit(EXIT_PIPELINE_FAILED)

    async def on_stop(self) -> None:
        runtime = self.worker.runtime
        if runtime.pipeline is not None:
            await runtime.pipeline.stop()
        if runtime.catalog_topic is not None:
            await runtime.catalog_topic.stop()
        await self.worker.publisher.stop()


def bind_api(app: faust.App, w: Worker) -> None:
    """The HTTP API over the services, on the app's web server."""
    settings, store, catalog = w.settings, w.store, w.catalog
    api = Api(
        key_ring=w.key_ring,
        catalog=catalog,
        usage=UsageService(store, lambda: catalog.index),
        publisher=w.publisher,
        status=w.reports.status,
        reconcile=w.reports.reconcile,
        max_batch_events=settings.max_batch_events,
    )
    dead_letters = DeadLetterApi(DeadLetterService(
        store=store, publisher=w.publisher,
        default_organization_id=settings.default_organization_id,
    ))
    keys = ApiKeyApi(
        ApiKeyService(store, w.key_ring),
        operator_organization_id=settings.default_organization_id,
        organizations=lambda: {org.id for org in store.organizations()},
    )
    routes = api_routes(api, lago=LagoControlApi(catalog, store), dead_letters=dead_letters,
                        api_keys=keys, observe_usage_read=w.metrics.usage_read_seconds.observe)
    bind_routes(app, routes, authenticate=api.authenticate,
                max_body_bytes=settings.max_body_bytes, metrics=w.metrics,
                readiness=w.runtime.readiness)


def add_timers(app: faust.App, w: Worker) -> None:
    """Gauges refreshed on timers: progress and readiness, reconciliation."""
    runtime, metrics = w.runtime, w.metrics

    @app.timer(interval=RELOAD_SECONDS)
    async def reload_keys() -> None:
        """Keys made or revoked on any worker count here within a second."""
        try:
            await asyncio.to_thread(w.key_ring.reload)
        except StoreError as exc:  # the store away: keep the last ring, try again
            log.warning("cannot reload the API keys: %s", exc)

    @app.timer(interval=w.settings.progress_interval_seconds)
    async def refresh_progress() -> None:
        """Lag from the broker's end offsets and the stall gauges (see streams.health)."""
        if runtime.pipeline is not None:
            await runtime.pipeline.refresh_progress()
        metrics.ready.set(1 if runtime.readiness()["ready"] else 0)

    @app.timer(interval=w.settings.reconcile_interval_seconds)
    async def refresh_gauges() -> None:
        """The reconciliation gauge (reconciling reads the tables: not per scrape)."""
        report = await w.reports.reconcile()
        for p in report["partitions"]:
            metrics.reconciliation_mismatch.labels(p["topic"], str(p["partition"])).set(
                1 if p["problems"] else 0
            )


def watch_catalog(metrics: Metrics, catalog: CatalogService) -> None:
    """Catalog gauges, computed at scrape time: always current, no timer needed."""
    metrics.catalog_version.set_function(lambda: catalog.version)
    metrics.catalog_age.set_function(
        lambda: time.time() - catalog.changed_at_ms / 1000 if catalog.changed_at_ms else math.nan
    )


def build_app(
    *, settings: Settings, bootstrap_servers: str, store: Store, catalog: CatalogService,
    on_ready: Callable[[], None] | None = None,
) -> tuple[faust.App, Runtime]:
    """Create the Faust app with the pipeline service and the API routes.

    ``on_ready`` is called once, the first time the worker is ready (see
    :meth:`Runtime.readiness`); until then every API request is answered 503."""
    app = faust_app(settings, bootstrap_servers)
    metrics = Metrics()
    kafka = kafka_options_for(settings, bootstrap_servers)
    publisher = KafkaEventPublisher(
        kafka, settings.raw_topic, timeout_s=settings.publish_timeout_seconds
    )
    runtime = Runtime(publisher=publisher, metrics=metrics)
    reports = Reports(
        store=store, catalog=catalog, raw_topic=settings.raw_topic,
        stall_seconds=settings.stall_seconds,
        pipeline=lambda: runtime.pipeline, readiness=runtime.readiness,
    )
    worker = Worker(settings=settings, kafka=kafka, store=store, catalog=catalog,
                    publisher=publisher, metrics=metrics, runtime=runtime, reports=reports,
                    key_ring=LiveKeyRing(store), on_ready=on_ready)
    bind_api(app, worker)
    watch_catalog(metrics, catalog)
    app.service(type("PipelineService", (PipelineService,), {"worker": worker}))
    add_timers(app, worker)
    return app, runtime
