"""The benchmark's catalog and event stream: realistic shape, reproducible from a seed.

Catalog: ``subscriptions`` customers, one subscription each, spread over three plans, three
timezones; metrics with filters (``storage_gb`` filtered by region eu/us/apac) and pricing
group keys (tier, instance type, HTTP method), and a count metric.

Events: keyed ``<org>-<external_subscription_id>`` like every Meterline producer; a share of
them (``dup_ratio``) re-send the exact bytes of a recent event (a retrying producer: same
transaction id); ``avro_ratio`` of the originals are Avro in the Confluent wire format
(:func:`schemas.avro.encode_confluent`), the rest JSON. 20% of the subscriptions get 80% of the
traffic. Event timestamps are the generation time minus up to 30 s (1% arrive up to 2 h late).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
from confluent_kafka import Producer

from schemas.avro import encode_confluent

ORG = "default"
REGIONS = ("eu", "us", "apac")
TIERS = ("standard", "premium")
INSTANCE_TYPES = ("small", "medium", "large", "gpu")
METHODS = ("GET", "POST", "PUT", "DELETE")
TIMEZONES = ("UTC", "Europe/Paris", "America/New_York")
PLANS = ("starter", "growth", "enterprise")
SUBSCRIPTIONS_START = "2026-01-01T00:00:00Z"


def subscription_id(i: int) -> str:
    return f"sub_{i:05d}"


def customer_id(i: int) -> str:
    return f"cust_{i:05d}"


def _plan(code: str, unit: str) -> dict:
    return {
        "code": code, "name": code.title(), "interval": "monthly", "amount_currency": "EUR",
        "charges": [
            {"billable_metric_code": "api_calls", "charge_model": "graduated",
             "properties": {"pricing_group_keys": ["method"], "graduated_ranges": [
                 {"from_value": 0, "to_value": 10_000, "per_unit_amount": "0",
                  "flat_amount": "0"},
                 {"from_value": 10_000, "to_value": None, "per_unit_amount": "0.0001",
                  "flat_amount": "1"}]}},
            {"billable_metric_code": "storage_gb", "charge_model": "standard",
             "properties": {"amount": unit, "pricing_group_keys": ["tier"]},
             "filters": [
                 {"values": {"region": ["eu"]},
                  "properties": {"amount": "0.023", "pricing_group_keys": ["tier"]}},
                 {"values": {"region": ["us"]},
                  "properties": {"amount": "0.021", "pricing_group_keys": ["tier"]}},
                 {"values": {"region": ["apac"]},
                  "properties": {"amount": "0.027", "pricing_group_keys": ["tier"]}},
             ]},
            {"billable_metric_code": "compute_hours", "charge_model": "package",
             "properties": {"amount": "5", "package_size": 10, "free_units": 2,
                            "pricing_group_keys": ["instance_type"]}},
        ],
    }


def build_catalog(subscriptions: int) -> dict:
    """A Lago-shaped catalog document for :meth:`CatalogService.apply_document`."""
    return {
        "billable_metrics": [
            {"code": "api_calls", "name": "API calls", "aggregation_type": "count_agg"},
            {"code": "storage_gb", "name": "Storage (GB)", "aggregation_type": "sum_agg",
             "field_name": "gb", "filters": [{"key": "region", "values": list(REGIONS)}]},
            {"code": "compute_hours", "name": "Compute hours", "aggregation_type": "sum_agg",
             "field_name": "hours", "rounding_function": "ceil", "rounding_precision": 2},
        ],
        "plans": [_plan(code, unit) for code, unit in zip(PLANS, ("0.03", "0.025", "0.02"),
                                                             strict=True)],
        "customers": [
            {"external_id": customer_id(i), "name": f"Customer {i}",
             "timezone": TIMEZONES[i % len(TIMEZONES)], "currency": "EUR"}
            for i in range(subscriptions)
        ],
        "subscriptions": [
            {"external_id": subscription_id(i), "external_customer_id": customer_id(i),
             "plan_code": PLANS[i % len(PLANS)], "started_at": SUBSCRIPTIONS_START}
            for i in range(subscriptions)
        ],
    }


@dataclass
class Tally:
    """What a generator produced."""

    events: int = 0
    json: int = 0
    avro: int = 0
    duplicates: int = 0


class EventStream:
    """Reproducible keyed events; ``tally`` counts what was generated."""

    RECENT = 50_000  # duplicates re-send one of the last RECENT originals

    def __init__(
        self, *, subscriptions: int, seed: int = 7, dup_ratio: float = 0.05,
        avro_ratio: float = 0.2, clock: Callable[[], float] = time.time,
    ):
        self.rng = random.Random(seed)
        self.subscriptions = subscriptions
        self.hot = max(1, subscriptions // 5)
        self.dup_ratio = dup_ratio
        self.avro_ratio = avro_ratio
        self.clock = clock
        self.recent: list[tuple[bytes, bytes]] = []
        self.tally = Tally()
        self._serial = 0

    def _body(self, tx: str) -> dict:
        rng = self.rng
        i = rng.randrange(self.hot) if rng.random() < 0.8 else rng.randrange(self.subscriptions)
        now = self.clock()
        late = rng.random() < 0.01
        ts = now - (rng.uniform(0, 7200) if late else rng.uniform(0, 30))
        body: dict = {"transaction_id": tx, "external_subscription_id": subscription_id(i),
                      "organization_id": ORG, "timestamp": round(ts, 3)}
        kind = rng.random()
        if kind < 0.5:
            body["code"] = "api_calls"
            body["properties"] = {"method": METHODS[rng.randrange(4)]}
        elif kind < 0.8:
            n = rng.randint(1, 100_000)
            body["code"] = "storage_gb"
            body["properties"] = {"gb": f"{n // 1000}.{n % 1000:03d}",
                                  "region": REGIONS[rng.randrange(3)],
                                  "tier": TIERS[rng.randrange(2)]}
        else:
            body["code"] = "compute_hours"
            body["properties"] = {"hours": f"{rng.randint(1, 4000) / 100:.2f}",
                                  "instance_type": INSTANCE_TYPES[rng.randrange(4)]}
        return body

    def next(self, tx_prefix: str) -> tuple[bytes, bytes]:
        """One (key, value) message."""
        rng = self.rng
        tally = self.tally
        tally.events += 1
        recent = self.recent
        if recent and rng.random() < self.dup_ratio:
            tally.duplicates += 1
            return recent[rng.randrange(len(recent))]
        self._serial += 1
        body = self._body(f"{tx_prefix}-{self._serial}")
        key = f"{ORG}-{body['external_subscription_id']}".encode()
        if rng.random() < self.avro_ratio:
            value = encode_confluent(body)
            tally.avro += 1
        else:
            value = orjson.dumps(body)
            tally.json += 1
        message = (key, value)
        if len(recent) < self.RECENT:
            recent.append(message)
        else:
            recent[rng.randrange(self.RECENT)] = message
        return message

    def take(self, count: int, tx_prefix: str) -> Iterator[tuple[bytes, bytes]]:
        for _ in range(count):
            yield self.next(tx_prefix)


def bulk_producer(bootstrap: str) -> Producer:
    """confluent-kafka producer tuned for large batches (the backlog is produced up front)."""
    return Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 50,
        "batch.num.messages": 10_000,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "message.timeout.ms": 300_000,
    })


def paced_producer(bootstrap: str) -> Producer:
    """A producer that sends promptly (freshness phase): small linger, acks=all."""
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "message.timeout.ms": 120_000})


def produce(producer: Producer, topic: str, key: bytes, value: bytes,
            timestamp_ms: int = 0) -> None:
    """Queue one message, waiting for room in the local queue when it is full."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, timestamp=timestamp_ms)
            return
        except BufferError:
            producer.poll(0.05)


def flush(producer: Producer, timeout: float = 300) -> None:
    left = producer.flush(timeout)
    if left:
        raise RuntimeError(f"{left} messages not delivered within {timeout}s")
