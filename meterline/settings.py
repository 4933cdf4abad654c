"""One frozen, validated settings object, read once from ``METERLINE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "SettingsError", "load_settings"]


class SettingsError(ValueError):
    """Raised when the environment holds an invalid configuration."""


class Settings(BaseSettings):
    """Everything Meterline reads from its environment. Frozen: never re-read after start."""

    model_config = SettingsConfigDict(env_prefix="METERLINE_", frozen=True, extra="forbid")

    # --- storage -------------------------------------------------------------------------------
    data_dir: Path = Field(Path(".meterline"), description="chdb data and local state")
    clickhouse_url: str = Field(
        "", description="ClickHouse server URL (http[s]://user:pass@host:port); empty = chdb"
    )
    clickhouse_database: str = "meterline"

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field("", description="empty = start the embedded Tansu broker")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""
    kafka_session_timeout_ms: int = Field(6000, ge=1000, le=300_000)
    raw_topic: str = "events-raw"
    raw_topic_partitions: int = Field(4, ge=1, le=1024)
    dead_letter_topic: str = "events_dead_letter"
    catalog_topic: str = "meterline-catalog"
    consumer_group: str = "meterline-worker"
    embedded_broker_port: int = Field(0, ge=0, le=65535, description="0 = pick a free port")

    # --- hot path ------------------------------------------------------------------------------
    batch_max_events: int = Field(50_000, ge=1, le=2_000_000)
    batch_max_seconds: float = Field(0.1, gt=0, le=60)
    dedup_window_days: int = Field(35, ge=1, le=3650)
    gc_collect_seconds: float = Field(
        10.0, ge=0, le=3600,
        description="worker: full garbage collection every N s instead of on allocation counts; "
        "0 = Python's automatic collector",
    )
    reconcile_interval_seconds: float = Field(30.0, ge=1, le=3600)
    progress_interval_seconds: float = Field(
        5.0, gt=0, le=600, description="how often lag (from the broker) and stalls are measured"
    )
    stall_seconds: float = Field(
        60.0, gt=0, le=86_400,
        description="a partition with work and no commit for this long is stalled (not ready)",
    )

    # --- HTTP API ------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    api_key: str = Field("", description="API key of the default organization; empty = generated")
    default_organization_id: str = "default"
    max_batch_events: int = Field(100, ge=1, le=10_000)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    publish_timeout_seconds: float = Field(
        10.0, gt=0, le=300,
        description="longest wait for Kafka to acknowledge an API publish; then a 503",
    )

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator(
        "raw_topic", "dead_letter_topic", "catalog_topic", "consumer_group", "clickhouse_database"
    )
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _sasl_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username
        ):
            raise ValueError("SASL needs kafka_sasl_mechanism and kafka_sasl_username")
        if self.raw_topic == self.dead_letter_topic:
            raise ValueError("raw_topic and dead_letter_topic must differ")
        return self

    @property
    def embedded_broker(self) -> bool:
        """True when Meterline starts its own local Tansu broker."""
        return not self.kafka_bootstrap_servers

    def with_overrides(self, **changes: object) -> Settings:
        """Return a validated copy with some fields changed (CLI flags win over the env)."""
        return load_settings(**{**self.model_dump(), **changes})


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise SettingsError with every problem found."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(problems) from exc
