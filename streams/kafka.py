"""Kafka client settings, topic creation, the log epoch (the cluster id), the raw topic's
group consumer and its offset commits."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger("meterline.kafka")

TOPIC_ALREADY_EXISTS = 36


def client_options(
    bootstrap_servers: str,
    *,
    security_protocol: str = "PLAINTEXT",
    sasl_mechanism: str = "",
    sasl_username: str = "",
    sasl_password: str = "",
    ssl_cafile: str = "",
) -> dict[str, Any]:
    """Connection options shared by every aiokafka client (producer, consumer, admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "security_protocol": security_protocol,
    }
    if security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=ssl_cafile or None)
    if security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=sasl_mechanism,
            sasl_plain_username=sasl_username,
            sasl_plain_password=sasl_password,
        )
    return options


async def ensure_topics(
    options: dict[str, Any], topics: dict[str, int],
    configs: dict[str, dict[str, str]] | None = None,
) -> None:
    """Create each topic with its partition count unless it exists already."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(name, partitions, 1, topic_configs=(configs or {}).get(name, {}))
                for name, partitions in topics.items()
            ]
        )
        for topic_error in getattr(response, "topic_errors", []):
            name, code = topic_error[0], topic_error[1]
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: error code {code}")
    finally:
        await admin.close()


async def cluster_id(options: dict[str, Any]) -> str:
    """The Kafka cluster id: the log epoch that tells two lives of a topic apart."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        described = await admin.describe_cluster()
        return str(described.get("cluster_id") or "kafka")
    finally:
        await admin.close()


def group_consumer(
    options: dict[str, Any], group_id: str, session_timeout_ms: int
) -> AIOKafkaConsumer:
    """The raw topic's consumer of a worker: a group member that commits nothing by itself
    (the manifest decides where partitions resume) and fetches large batches."""
    return AIOKafkaConsumer(
        **options,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 3),
        rebalance_timeout_ms=max(session_timeout_ms, 10_000),
        max_poll_interval_ms=600_000,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )


async def commit_offsets(consumer: Any, topic: str, offsets: Mapping[int, int]) -> None:
    """Commit ``offsets`` (partition → next offset) of ``topic``; a partition revoked
    meanwhile is skipped with a warning (the manifest holds the truth)."""
    try:
        await consumer.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
    except Exception as exc:
        log.warning("kafka offset commit skipped: %s", exc)
