"""What the services need from the raw topic: an event publisher (``streams.producer``'s
:class:`~streams.producer.KafkaEventPublisher` is the Kafka one)."""

from __future__ import annotations

from typing import Protocol


class PublishFailed(RuntimeError):
    """Some record of a publish was not acknowledged (broker down or slow, publisher not
    started): a retry can succeed. Records of the same call may have been written; a retry
    of the whole request is exact because the pipeline deduplicates by transaction id."""


class EventPublisher(Protocol):
    """Writes events durably to the raw topic (acks=all) before returning."""

    async def publish(self, records: list[tuple[bytes, bytes]]) -> None:
        """Publish ``(key, value)`` records; raise :class:`PublishFailed` unless every one is
        acknowledged (after every record was given its chance: never half-way)."""
