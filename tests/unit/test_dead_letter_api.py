"""Dead letters over HTTP (issue 16, finding 8): pages like Lago's, bounded answers, one letter
in full on request, and re-drives a chunk at a time."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest

from api.dead_letters import DeadLetterApi
from api.pagination import MAX_PER_PAGE
from services.dead_letters import PAYLOAD_PREVIEW_BYTES, REDRIVE_CHUNK, DeadLetterService

ORG = "org-1"


class LettersDouble:
    """The store's dead-letter methods over a list, newest first, with the SQL's semantics."""

    def __init__(self, letters: list[dict]) -> None:
        self.letters = letters
        self.redriven: set[tuple] = set()
        self.calls: list[dict] = []

    @staticmethod
    def _pos(d: dict) -> tuple:
        return (d["source_topic"], d["source_partition"], d["source_offset"])

    def _match(self, *, error_code=None, organization_id=None, since_ms=None, until_ms=None,
               include_unattributed=False, pending_only=False, position=None) -> list[dict]:
        out = []
        for d in self.letters:
            if error_code and d["error_code"] != error_code:
                continue
            if organization_id and not (d["organization_id"] == organization_id or (
                    include_unattributed and d["organization_id"] == "")):
                continue
            if pending_only and self._pos(d) in self.redriven:
                continue
            if position is not None and self._pos(d) != position:
                continue
            out.append(d)
        return out

    def dead_letters(self, *, limit=1000, offset=0, payload_limit=None, **filters) -> list[dict]:
        self.calls.append({"limit": limit, "offset": offset, "payload_limit": payload_limit})
        rows = self._match(**filters)[offset: offset + limit]
        return [{**d, "payload_bytes": len(d["payload"]),
                 "payload": d["payload"][:payload_limit] if payload_limit else d["payload"]}
                for d in rows]

    def count_dead_letters(self, **filters) -> int:
        return len(self._match(**filters))

    def mark_redriven(self, letters: list[dict]) -> None:
        self.redriven.update(self._pos(d) for d in letters)


class RecordingPublisher:
    def __init__(self) -> None:
        self.calls: list[list[tuple[bytes, bytes]]] = []

    async def publish(self, records: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(records)


def letter(offset: int, payload: bytes = b'{"x": 1}', code: str = "no_subscription",
           org: str = ORG, sub: str = "s") -> dict:
    return {"organization_id": org, "external_subscription_id": sub, "transaction_id": f"t{offset}",
            "error_code": code, "error_message": code, "payload": payload,
            "source_topic": "raw", "source_partition": 0, "source_offset": offset,
            "failed_at_ms": 1_700_000_000_000 - offset}


def make(letters: list[dict]) -> tuple[DeadLetterApi, LettersDouble, RecordingPublisher]:
    store, publisher = LettersDouble(letters), RecordingPublisher()
    api = DeadLetterApi(DeadLetterService(store=store, publisher=publisher,  # type: ignore[arg-type]
                                          default_organization_id="default"))
    return api, store, publisher


def test_letters_come_a_page_at_a_time_with_lagos_meta():
    api, _, _ = make([letter(i) for i in range(45)])
    everything = api.list(ORG, {})
    assert len(everything.body["dead_letters"]) == 45  # Lago's default page size: 100
    assert everything.body["meta"] == {"current_page": 1, "next_page": None, "prev_page": None,
                                       "total_pages": 1, "total_count": 45}
    first = api.list(ORG, {"per_page": "20"})
    assert first.status == 200
    assert len(first.body["dead_letters"]) == 20
    assert first.body["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None,
                                  "total_pages": 3, "total_count": 45}
    last = api.list(ORG, {"page": "3", "per_page": "20"})
    assert [d["source_offset"] for d in last.body["dead_letters"]] == list(range(40, 45))
    assert last.body["meta"] == {"current_page": 3, "next_page": None, "prev_page": 2,
                                 "total_pages": 3, "total_count": 45}
    beyond = api.list(ORG, {"page": "99", "per_page": "20"})
    assert beyond.body["dead_letters"] == [] and beyond.body["meta"]["total_count"] == 45
    assert beyond.body["meta"]["next_page"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"per_page": str(MAX_PER_PAGE + 1)}, "per_page"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "-5"}, "per_page"),
        ({"per_page": "ten"}, "per_page"),
        ({"per_page": "1.5"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"since": "yesterday"}, "since"),
        ({"until": "9999-01-01T00:00:00Z"}, "until"),
    ],
)
def test_bad_pages_and_filters_are_422_with_the_envelope(query, field):
    api, store, _ = make([letter(1)])
    answer = api.list(ORG, query)
    assert answer.status == 422
    assert answer.body["code"] == "validation_errors" and field in answer.body["error_details"]
    assert store.calls == []


def test_a_page_shows_payload_previews_and_one_letter_shows_it_whole():
    # before: 60 letters of 900 KB made one 185 MB answer
    big = b"\xff" + b"x" * 900_000
    api, store, _ = make([letter(7, big), letter(8)])
    page = api.list(ORG, {"per_page": "100"})
    shown = {d["source_offset"]: d for d in page.body["dead_letters"]}
    assert shown[7]["payload_truncated"] is True and shown[7]["payload_bytes"] == len(big)
    assert len(base64.b64decode(shown[7]["payload_base64"])) == PAYLOAD_PREVIEW_BYTES
    assert shown[8]["payload_truncated"] is False and shown[8]["payload"] == '{"x": 1}'
    assert len(orjson.dumps(page.body)) < 4 * PAYLOAD_PREVIEW_BYTES * 2
    assert {c["payload_limit"] for c in store.calls} == {PAYLOAD_PREVIEW_BYTES}

    one = api.get(ORG, "raw", "0", "7")
    assert one.status == 200
    assert base64.b64decode(one.body["dead_letter"]["payload_base64"]) == big
    assert one.body["dead_letter"]["payload_truncated"] is False


@pytest.mark.parametrize(("topic", "partition", "offset"),
                         [("raw", "0", "99"), ("raw", "x", "7"), ("raw", "0", "-1"),
                          ("other", "0", "7"), ("raw", "0", str(2**64))])
def test_an_unknown_letter_is_404(topic, partition, offset):
    api, _, _ = make([letter(7)])
    answer = api.get(ORG, topic, partition, offset)
    assert (answer.status, answer.body["code"]) == (404, "dead_letter_not_found")


def test_letters_of_another_organization_are_not_shown():
    api, _, _ = make([letter(1, org="other")])
    assert api.list(ORG, {}).body["meta"]["total_count"] == 0
    assert api.get(ORG, "raw", "0", "1").status == 404


def test_redrive_goes_a_chunk_at_a_time_and_each_letter_once():
    count = REDRIVE_CHUNK * 2 + 5
    api, store, publisher = make([letter(i) for i in range(count)])
    answer = asyncio.run(api.redrive(ORG, b"{}"))
    assert answer.body == {"redriven": count, "by_reason": {"no_subscription": count}}
    assert [len(c) for c in publisher.calls] == [REDRIVE_CHUNK, REDRIVE_CHUNK, 5]
    assert max(c["limit"] for c in store.calls) == REDRIVE_CHUNK
    assert asyncio.run(api.redrive(ORG, b"{}")).body["redriven"] == 0
    limited = make([letter(i) for i in range(10)])
    assert asyncio.run(limited[0].redrive(ORG, b'{"limit": 3}')).body["redriven"] == 3


def test_redrive_keys_letters_as_the_api_keys_events_unless_the_ids_are_unusable():
    api, _, publisher = make([letter(1, org="default"), letter(2, org="default", sub="s" * 300),
                              letter(3, org="")])  # no organization: undecodable bytes
    asyncio.run(api.redrive("default", b"{}"))
    keys = [record[0] for call in publisher.calls for record in call]
    assert keys == [b"default-s", b"", b""]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{", 400), (b"[]", 400), (b'{"nope": 1}', 422), (b'{"limit": 0}', 422),
     (b'{"limit": 10001}', 422), (b'{"limit": true}', 422), (b'{"limit": 1.5}', 422),
     (b'{"error_code": ["a"]}', 422), (b'{"since": 5}', 422)],
)
def test_bad_redrive_bodies_are_4xx(body, status):
    api, _, publisher = make([letter(1)])
    answer = asyncio.run(api.redrive(ORG, body))
    assert answer.status == status and answer.body["status"] == status
    assert publisher.calls == []
