"""Every error its right code (issue 16): 4xx for what the caller can fix, 503 + Retry-After
only for what a retry can fix, 500 for a bug; and the publisher never fails half-way silently.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from api.errors import failure_response
from services.catalog import CatalogService
from services.publishing import PublishFailed
from services.usage import PeriodOutOfRange, UsageNotFound, UsageService
from sinks.memory_store import MemoryStore
from sinks.store import StoreDataError, StoreError
from streams.producer import KafkaEventPublisher, PublishRejected

ORG = "org-1"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


# --- the catch-all of the web layer -----------------------------------------------------------
@pytest.mark.parametrize(
    "exc",
    [
        StoreError("Code: 210. Connection refused"),
        PublishFailed("3 record(s) not acknowledged within 10s"),
        KafkaTimeoutError(),
        KafkaConnectionError("broker down"),
        TimeoutError(),
    ],
)
def test_what_a_retry_can_fix_is_503_with_retry_after(exc):
    answer = failure_response(exc)
    assert answer.status == 503
    assert answer.body == {"status": 503, "error": "Service Unavailable",
                           "code": "temporarily_unavailable"}
    assert answer.headers is not None and int(answer.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("field"),
        ValueError("year -81307 is out of range"),
        TypeError("unhashable type: 'list'"),
        PublishRejected("refused as too large"),
        MessageSizeTooLargeError(),
    ],
)
def test_anything_else_is_a_bug_answered_500_with_the_envelope(exc):
    answer = failure_response(exc)
    assert answer.status == 500
    assert answer.body == {"status": 500, "error": "Internal Server Error",
                           "code": "internal_error"}
    assert not answer.headers  # no Retry-After: retrying a bug does not help


def test_a_store_data_error_is_not_retryable():
    # the engine refused the data itself: the same request fails again
    exc = StoreDataError("Code: 321. VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", 321)
    assert failure_response(exc).status == 500


# --- current usage: periods the caller asks for -----------------------------------------------
class NoReads:
    """The usage reads of an empty store."""

    def read_usage(self, *args, **kwargs):
        return []

    def read_unique(self, *args, **kwargs):
        return {}

    def read_daily_sums(self, *args, **kwargs):
        return {}

    def read_event_values(self, *args, **kwargs):
        return {}


@pytest.fixture
def usage() -> UsageService:
    catalog = CatalogService(MemoryStore(), clock=lambda: NOW)  # type: ignore[arg-type]
    catalog.apply(ORG, "billable_metric", {"code": "calls", "aggregation_type": "count_agg"})
    catalog.apply(ORG, "plan", {
        "code": "p", "interval": "monthly", "amount_currency": "EUR",
        "charges": [{"billable_metric_code": "calls", "charge_model": "standard",
                     "properties": {"amount": "1"}}],
    })
    catalog.apply(ORG, "customer", {"external_id": "c"})
    catalog.apply(ORG, "subscription", {"external_id": "s", "external_customer_id": "c",
                                        "plan_code": "p", "started_at": "2026-10-15T00:00:00Z"})
    catalog.apply(ORG, "subscription", {"external_id": "later", "external_customer_id": "c",
                                        "plan_code": "p", "started_at": "2099-01-01T00:00:00Z"})
    return UsageService(NoReads(), lambda: catalog.index, clock=lambda: NOW)  # type: ignore[arg-type]


def test_periods_in_the_subscription_lifetime_are_priced(usage):
    assert usage.usage(ORG, "s")["from_datetime"] == "2026-11-01T00:00:00Z"
    assert usage.usage(ORG, "s", period_index=-1)["from_datetime"] == "2026-10-15T00:00:00Z"
    assert usage.usage(ORG, "s", period_index=3)["from_datetime"] == "2027-02-01T00:00:00Z"


@pytest.mark.parametrize("index", [-2, -1_000_000, 1_000_000, 10**30, -(10**30)])
def test_a_period_outside_the_lifetime_or_the_stores_instants_is_the_callers_error(usage, index):
    # before: -1_000_000 raised ValueError (year -81307) and the API answered 503
    with pytest.raises(PeriodOutOfRange):
        usage.usage(ORG, "s", period_index=index)


def test_a_pending_subscription_has_no_current_usage_as_in_lago(usage):
    with pytest.raises(UsageNotFound) as raised:
        usage.usage(ORG, "later")
    assert raised.value.code == "no_active_subscription"


# --- the publisher: all records get their chance, then one answer -----------------------------
class FakeProducer:
    """aiokafka's send(): enqueue (may raise) and return a future resolved on delivery."""

    def __init__(self, *, refuse: set[int] = frozenset(), fail: set[int] = frozenset(),
                 hang: bool = False, too_large: set[int] = frozenset()):
        self.refuse, self.fail, self.hang, self.too_large = refuse, fail, hang, too_large
        self.sent: list[bytes] = []
        self.delivered: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future:
        index = len(self.sent)
        self.sent.append(value)
        if index in self.refuse:
            raise KafkaTimeoutError()
        if index in self.too_large:
            raise MessageSizeTooLargeError()
        future = asyncio.get_running_loop().create_future()
        if index in self.fail:
            future.set_exception(KafkaConnectionError("lost"))
        elif not self.hang:
            self.delivered.append(value)
            future.set_result(index)
        return future


def publish(producer: FakeProducer, records, timeout_s: float = 5.0) -> None:
    publisher = KafkaEventPublisher({}, "raw", timeout_s=timeout_s)
    publisher._producer = producer  # type: ignore[assignment]
    asyncio.run(publisher.publish(records))


RECORDS = [(b"k", b"e0"), (b"k", b"e1"), (b"k", b"e2")]


def test_all_acknowledged_returns():
    producer = FakeProducer()
    publish(producer, RECORDS)
    assert producer.delivered == [b"e0", b"e1", b"e2"]  # in order


@pytest.mark.parametrize("fault", [{"refuse": {1}}, {"fail": {1}}])
def test_one_failed_record_fails_the_call_after_every_record_was_sent(fault):
    # before: the first failure propagated while the records after it were never sent and
    # those before it were written: a 503 that hid a partial write
    producer = FakeProducer(**fault)
    with pytest.raises(PublishFailed, match="1 of 3"):
        publish(producer, RECORDS)
    assert producer.sent == [b"e0", b"e1", b"e2"]
    assert producer.delivered == [b"e0", b"e2"]


def test_a_frozen_broker_fails_within_the_timeout():
    producer = FakeProducer(hang=True)
    started = asyncio.run(_timed(producer))
    assert started < 2.0


async def _timed(producer: FakeProducer) -> float:
    publisher = KafkaEventPublisher({}, "raw", timeout_s=0.3)
    publisher._producer = producer  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(PublishFailed, match=r"within 0\.3s"):
        await publisher.publish(RECORDS)
    return loop.time() - t0


def test_not_started_is_retryable():
    with pytest.raises(PublishFailed):
        asyncio.run(KafkaEventPublisher({}, "raw").publish(RECORDS))


def test_a_record_kafka_refuses_as_too_large_is_not_retryable():
    producer = FakeProducer(too_large={0})
    with pytest.raises(PublishRejected):
        publish(producer, RECORDS)
    assert producer.delivered == [b"e1", b"e2"]
