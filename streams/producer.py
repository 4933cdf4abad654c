"""Durable writes to the raw topic for the ingest API (acks=all before the API answers 200)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer


class KafkaEventPublisher:
    """Publishes keyed records to one topic and waits until every one is acknowledged."""

    def __init__(self, kafka_options: dict[str, Any], topic: str):
        self.topic = topic
        self.kafka_options = kafka_options
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect to the brokers (aiokafka clients must be created inside the event loop)."""
        self._producer = AIOKafkaProducer(**self.kafka_options, acks="all", linger_ms=2)
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, records: list[tuple[bytes, bytes]]) -> None:
        """Send ``(key, value)`` records; return once all are acknowledged (raise otherwise)."""
        if self._producer is None:
            raise RuntimeError("publisher not started")
        futures = [
            await self._producer.send(self.topic, value=value, key=key) for key, value in records
        ]
        await asyncio.gather(*futures)
