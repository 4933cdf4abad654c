"""Kafka client settings (aiokafka's and librdkafka's), topic creation and the log epoch (the
cluster id)."""

from __future__ import annotations

import logging
import ssl
from typing import Any

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


def rdkafka_connection(
    bootstrap_servers: str,
    *,
    security_protocol: str = "PLAINTEXT",
    sasl_mechanism: str = "",
    sasl_username: str = "",
    sasl_password: str = "",
    ssl_cafile: str = "",
) -> dict[str, str]:
    """The same connection as :func:`client_options`, in librdkafka's (confluent-kafka's)
    settings: the raw topic's fetcher (``streams.fetcher``) uses them."""
    config = {"bootstrap.servers": bootstrap_servers, "security.protocol": security_protocol}
    if security_protocol in ("SSL", "SASL_SSL") and ssl_cafile:
        config["ssl.ca.location"] = ssl_cafile
    if security_protocol.startswith("SASL"):
        config.update({"sasl.mechanism": sasl_mechanism, "sasl.username": sasl_username,
                       "sasl.password": sasl_password})
    return config


def rdkafka_connection_of(options: dict[str, Any]) -> dict[str, str]:
    """librdkafka settings of a connection given as :func:`client_options` (an SSL
    context's CA file cannot be read back: pass :func:`rdkafka_connection` for TLS)."""
    protocol = options.get("security_protocol", "PLAINTEXT")
    if protocol in ("SSL", "SASL_SSL"):
        raise ValueError("TLS connections need rdkafka_connection(..., ssl_cafile=...)")
    return rdkafka_connection(
        options.get("bootstrap_servers", ""), security_protocol=protocol,
        sasl_mechanism=options.get("sasl_mechanism", ""),
        sasl_username=options.get("sasl_plain_username", ""),
        sasl_password=options.get("sasl_plain_password", ""),
    )


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
