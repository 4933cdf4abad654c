"""API behaviour without a web server: validation, envelopes, what reaches the publisher."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import orjson
import pytest

from api.handlers import Api
from services.api_keys import KeyRing, new_key_record
from services.catalog import CatalogService
from services.usage import UsageService
from sinks.memory_store import MemoryStore

NOW_MS = 1_795_000_000_000


class RecordingPublisher:
    """Test double of the raw-topic publisher: keeps what it was asked to publish."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    async def publish(self, records: list[tuple[bytes, bytes]]) -> None:
        self.records.extend(records)


@pytest.fixture
def api_and_publisher():
    catalog = CatalogService(MemoryStore(), clock=lambda: datetime.now(UTC))  # type: ignore[arg-type]
    publisher = RecordingPublisher()
    api = Api(
        key_ring=lambda: KeyRing([new_key_record("k", "org-1", "test")]),
        catalog=catalog,
        usage=UsageService(None, lambda: catalog.index),  # type: ignore[arg-type]
        publisher=publisher,
        max_batch_events=3,
        clock_ms=lambda: NOW_MS,
    )
    return api, publisher


def run(coro):
    return asyncio.run(coro)


def test_authentication(api_and_publisher):
    api, _ = api_and_publisher
    who = api.authenticate("Bearer k")
    assert who is not None and (who.organization_id, who.role, who.name) == (
        "org-1", "admin", "test")
    assert api.authenticate("Bearer nope") is None
    assert api.authenticate("k") is None
    assert api.authenticate(None) is None


@pytest.mark.parametrize("header", [
    "Bearer   k   ", "Bearer  k", "Bearer k ", "bearer k", "Bearer\tk", "Bearer k\n", "Bearer ",
])
def test_a_padded_or_altered_key_is_refused(api_and_publisher, header):
    """Issue 16, finding 9: ``Bearer   KEY   `` was accepted (the key was stripped)."""
    api, _ = api_and_publisher
    assert api.authenticate(header) is None


def test_keys_are_kept_as_digests_only():
    record = new_key_record("secret-key", "org-1", "ci")
    assert "secret-key" not in repr(record)
    assert record.key_hash == hashlib.sha256(b"secret-key").hexdigest()
    ring = KeyRing([record, new_key_record("other", "org-2", "ci")])
    assert ring.organization("Bearer secret-key") == "org-1"
    assert ring.organization("Bearer other") == "org-2"
    assert ring.organization("Bearer secret-keY") is None


def test_event_is_published_with_org_key_and_ingestion_time(api_and_publisher):
    api, publisher = api_and_publisher
    body = orjson.dumps({"event": {"transaction_id": "t", "external_subscription_id": "s",
                                   "code": "c", "organization_id": "spoofed"}})
    response = run(api.post_event("org-1", body))
    assert response.status == 200
    ((key, value),) = publisher.records
    assert key == b"org-1-s"
    sent = orjson.loads(value)
    assert sent["organization_id"] == "org-1"  # the API key decides, not the payload
    assert sent["timestamp"] == "1795000000.000"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "bad_request"),
        (b"[]", 400, "bad_request"),
        (b'{"event": null}', 400, "bad_request"),
        (b'{"event": {"code": "c"}}', 422, "validation_errors"),
        (b'{"event": "x"}', 422, "validation_errors"),
    ],
)
def test_bad_single_events_are_rejected_and_not_published(api_and_publisher, body, status, code):
    api, publisher = api_and_publisher
    response = run(api.post_event("org-1", body))
    assert (response.status, response.body["code"]) == (status, code)
    assert response.body["status"] == status
    assert publisher.records == []


def test_batch_is_all_or_nothing_with_errors_by_index(api_and_publisher):
    api, publisher = api_and_publisher
    good = {"transaction_id": "t", "external_subscription_id": "s", "code": "c"}
    bad = {**good, "timestamp": "yesterday"}
    response = run(api.post_events_batch("org-1", orjson.dumps({"events": [good, bad, good]})))
    assert response.status == 422 and list(response.body["error_details"]) == ["1"]
    assert "timestamp" in response.body["error_details"]["1"]
    assert publisher.records == []
    too_many = orjson.dumps({"events": [good] * 4})
    assert run(api.post_events_batch("org-1", too_many)).status == 422
    assert run(api.post_events_batch("org-1", b'{"events": []}')).status == 422
    ok = run(api.post_events_batch("org-1", orjson.dumps({"events": [good, good]})))
    assert ok.status == 200 and len(publisher.records) == 2


def test_current_usage_needs_a_subscription_id(api_and_publisher):
    api, _ = api_and_publisher
    assert api.current_usage("org-1", "c", {}).status == 422
    missing = api.current_usage("org-1", "c", {"external_subscription_id": "nope"})
    assert (missing.status, missing.body["code"]) == (404, "subscription_not_found")
