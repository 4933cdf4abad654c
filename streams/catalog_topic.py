"""The compacted catalog topic: carries catalog changes to every worker's in-memory view.

The store is the durable record; the topic is how a change made through one process's API
reaches the other workers without a database round-trip per event. Each message holds the
full version history of one resource, keyed by the resource, so compaction keeps exactly one
message per resource and a worker reading the topic from the start rebuilds every history.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from meterline.catalog_service import CatalogService
from sinks.store import CatalogDoc

log = logging.getLogger("meterline.catalog_topic")

TOPIC_CONFIG = {"cleanup.policy": "compact"}


def encode_history(docs: list[CatalogDoc]) -> tuple[bytes, bytes]:
    """(key, value) of one resource's history message."""
    first = docs[0]
    key = f"{first.organization_id}\x1f{first.kind}\x1f{first.key}".encode()
    value = orjson.dumps(
        [
            {"org": d.organization_id, "kind": d.kind, "key": d.key, "body": d.body,
             "deleted": d.deleted, "version": d.version, "at": d.effective_at_ms}
            for d in docs
        ]
    )
    return key, value


def decode_history(value: bytes) -> list[CatalogDoc]:
    """The versions carried by one message."""
    return [
        CatalogDoc(d["org"], d["kind"], d["key"], d["body"], d["deleted"], d["version"], d["at"])
        for d in orjson.loads(value)
    ]


class CatalogTopic:
    """Publishes this process's catalog changes and merges everyone else's."""

    def __init__(self, kafka_options: dict[str, Any], topic: str, catalog: CatalogService):
        self.kafka_options = kafka_options
        self.topic = topic
        self.catalog = catalog
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.merged = 0

    async def start(self) -> None:
        """Start publishing, and follow the topic from its beginning."""
        self._loop = asyncio.get_running_loop()
        self._producer = AIOKafkaProducer(**self.kafka_options, acks="all")
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(**self.kafka_options, enable_auto_commit=False)
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic) or {0}
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self.catalog.listeners.append(self.publish)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        """Stop following and publishing."""
        if self.publish in self.catalog.listeners:
            self.catalog.listeners.remove(self.publish)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    def publish(self, docs: list[CatalogDoc]) -> None:
        """Catalog listener: send each changed resource's history (called on the event loop)."""
        if self._loop is None or self._producer is None:
            return
        keys = {(d.organization_id, d.kind, d.key) for d in docs}
        messages = [encode_history(self.catalog.history_docs(*k)) for k in sorted(keys)]
        self._loop.call_soon_threadsafe(
            lambda: asyncio.ensure_future(self._send(messages))
        )

    async def _send(self, messages: list[tuple[bytes, bytes]]) -> None:
        assert self._producer is not None
        try:
            for key, value in messages:
                await self._producer.send_and_wait(self.topic, value=value, key=key)
        except Exception:  # the store holds the change; other workers get it at their restart
            log.exception("could not publish a catalog change to %s", self.topic)

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            docs = [
                doc
                for records in batches.values()
                for record in records
                if record.value
                for doc in decode_history(record.value)
            ]
            if docs:
                self.merged += await asyncio.to_thread(self.catalog.merge, docs)
