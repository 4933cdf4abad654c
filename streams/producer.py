"""Durable writes to the raw topic for the ingest API (acks=all before the API answers 200)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

from services.publishing import PublishFailed

DEFAULT_TIMEOUT_SECONDS = 10.0
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


class PublishRejected(RuntimeError):
    """Kafka refused a record for good (too large): not a retry's matter. The API's edge bounds
    (:mod:`schemas.bounds`) are meant to make this impossible, so it is answered as a bug."""


class KafkaEventPublisher:
    """Publishes keyed records to one topic and waits until every one is acknowledged.

    A call either returns with every record acknowledged, or raises :class:`PublishFailed`
    once every record has been handed to the producer and has succeeded, failed or run out of
    ``timeout_s``: it never stops half-way with records still being sent unreported. Records
    of a failed call may have been written; the API answers 503 and the client's retry is
    deduplicated by transaction id.
    """

    def __init__(
        self, kafka_options: dict[str, Any], topic: str,
        timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
    ):
        self.topic = topic
        self.kafka_options = kafka_options
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect to the brokers (aiokafka clients must be created inside the event loop)."""
        self._producer = AIOKafkaProducer(**self.kafka_options, acks="all", linger_ms=2)
        await self._producer.start()

    @property
    def started(self) -> bool:
        """True once connected (:meth:`start` returned)."""
        return self._producer is not None

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, records: list[tuple[bytes, bytes]]) -> None:
        """Send ``(key, value)`` records; return once all are acknowledged.

        Raises :class:`PublishFailed` when the publisher is not started, when any record fails,
        or when they are not all acknowledged within ``timeout_s`` (a frozen broker).
        """
        producer = self._producer
        if producer is None:
            raise PublishFailed("publisher not started")
        try:
            outcomes = await asyncio.wait_for(self._send_all(producer, records), self.timeout_s)
        except TimeoutError as exc:
            raise PublishFailed(
                f"{len(records)} record(s) not acknowledged within {self.timeout_s:g}s"
            ) from exc
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        rejected = [f for f in failures if isinstance(f, _TOO_LARGE)]
        if rejected:  # a retry fails again: the edge bounds let through what Kafka refuses
            raise PublishRejected(
                f"{len(rejected)} of {len(records)} record(s) refused as too large by Kafka "
                f"(largest sent: {max(len(k) + len(v) for k, v in records)} bytes; check the "
                f"broker's message.max.bytes): {rejected[0]!r}"
            ) from rejected[0]
        if failures:
            raise PublishFailed(
                f"{len(failures)} of {len(records)} record(s) not acknowledged: {failures[0]!r}"
            ) from failures[0]

    async def _send_all(
        self, producer: AIOKafkaProducer, records: list[tuple[bytes, bytes]]
    ) -> list[object]:
        """Hand every record to the producer in order, then wait for every acknowledgement; a
        record that fails (at hand-over or delivery) has its exception in its place."""
        handed: list[object] = []
        for key, value in records:
            try:  # send() enqueues (it may wait for metadata or buffer space)
                handed.append(await producer.send(self.topic, value=value, key=key))
            except Exception as exc:  # e.g. KafkaTimeoutError: the others still go
                handed.append(exc)
        pending = [h for h in handed if isinstance(h, asyncio.Future)]
        acknowledged = iter(await asyncio.gather(*pending, return_exceptions=True))
        return [next(acknowledged) if isinstance(h, asyncio.Future) else h for h in handed]
