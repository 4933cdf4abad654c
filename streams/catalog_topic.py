"""The compacted catalog topic: carries catalog changes to every worker's in-memory view.

The store is the durable record; the topic is how a change made through one process's API
reaches the other workers without a database round-trip per event. Each message holds one
version of one resource, keyed by the resource and the version, so compaction keeps every
version and a worker reading the topic from the start rebuilds every history. (Topics written
by earlier versions hold one message per resource with its whole history: the value is a list
of versions in both forms, and merging is idempotent.) One message per version keeps every
message as small as one version: a whole history grows with each change, and once over
Kafka's message size it could no longer be published.

A change whose message would be larger than :data:`MAX_MESSAGE_BYTES` is refused before
anything is written (:func:`check_publishable`, a 422 at the API): an accepted change always
reaches the other workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.catalog import CatalogValidationError
from sinks.store import CatalogDoc

log = logging.getLogger("meterline.catalog_topic")

#: Largest message (key + value) published: below the 1 MiB that Kafka brokers
#: (``message.max.bytes``) and producers (``max.request.size``) accept by default, with room
#: for the record overhead.
MAX_MESSAGE_BYTES = 1_000_000

TOPIC_CONFIG = {"cleanup.policy": "compact"}


class CatalogFeed(Protocol):
    """What the topic needs of the catalog (:class:`services.catalog.CatalogService` is one):
    hooks run on each local change (``checks`` may refuse it, ``listeners`` publish it), and
    ``merge`` for the changes other workers made."""

    listeners: list[Callable[[list[CatalogDoc]], None]]
    checks: list[Callable[[list[CatalogDoc]], None]]

    def merge(self, docs: Iterable[CatalogDoc]) -> int:
        """Merge versions into the catalog; return how many were new."""
        ...


def encode_version(doc: CatalogDoc) -> tuple[bytes, bytes]:
    """(key, value) of the message carrying one version of one resource."""
    key = f"{doc.organization_id}\x1f{doc.kind}\x1f{doc.key}\x1f{doc.version}".encode()
    value = orjson.dumps(
        [{"org": doc.organization_id, "kind": doc.kind, "key": doc.key, "body": doc.body,
          "deleted": doc.deleted, "version": doc.version, "at": doc.effective_at_ms}]
    )
    return key, value


def check_publishable(docs: list[CatalogDoc]) -> None:
    """Raise a 422 (``value_is_too_long`` on the resource kind) for a version whose message
    would be over :data:`MAX_MESSAGE_BYTES`: nothing of the change is written then."""
    too_large = sorted({
        doc.kind for doc in docs
        if sum(map(len, encode_version(doc))) > MAX_MESSAGE_BYTES
    })
    if too_large:
        raise CatalogValidationError({kind: ["value_is_too_long"] for kind in too_large})


def decode_history(value: bytes) -> list[CatalogDoc]:
    """The versions carried by one message."""
    return [
        CatalogDoc(d["org"], d["kind"], d["key"], d["body"], d["deleted"], d["version"], d["at"])
        for d in orjson.loads(value)
    ]


class CatalogTopic:
    """Publishes this process's catalog changes and merges everyone else's."""

    def __init__(self, kafka_options: dict[str, Any], topic: str, catalog: CatalogFeed):
        self.kafka_options = kafka_options
        self.topic = topic
        self.catalog = catalog
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
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
        self.catalog.checks.append(check_publishable)
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        """Stop following and publishing."""
        if self.publish in self.catalog.listeners:
            self.catalog.listeners.remove(self.publish)
        if check_publishable in self.catalog.checks:
            self.catalog.checks.remove(check_publishable)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    def publish(self, docs: list[CatalogDoc]) -> None:
        """Catalog listener: send each new version (called from any thread)."""
        if self._loop is None or self._producer is None:
            return
        messages = [encode_version(doc) for doc in docs]
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
