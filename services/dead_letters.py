"""Dead letters (SPEC §4): find them, read one, re-drive them to the raw topic.

What an organization sees: its own letters, and the default organization also those no
organization could be read from (unattributed). Listing reads payload previews of
:data:`PAYLOAD_PREVIEW_BYTES`; one letter comes whole. A re-drive reads and publishes
:data:`REDRIVE_CHUNK` letters at a time, so memory stays bounded whatever it selects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from schemas.bounds import MAX_ID_LENGTH
from schemas.event import partition_key
from services.publishing import EventPublisher
from sinks.store import DeadLetterStore

PAYLOAD_PREVIEW_BYTES = 2048
REDRIVE_CHUNK = 100


@dataclass(frozen=True)
class LetterFilter:
    """Which letters: by reason, failure time (``[since_ms, until_ms]``, Unix ms) and whether
    already re-driven ones are left out (``pending_only``)."""

    error_code: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    pending_only: bool = True

    def store_filters(self) -> dict[str, Any]:
        """The filters as :meth:`sinks.store.DeadLetterStore.dead_letters` takes them."""
        filters: dict[str, Any] = {"error_code": self.error_code,
                                   "pending_only": self.pending_only}
        if self.since_ms is not None:
            filters["since_ms"] = self.since_ms
        if self.until_ms is not None:
            filters["until_ms"] = self.until_ms
        return filters


@dataclass(frozen=True)
class Redriven:
    """What a re-drive did: how many letters, by reason."""

    count: int
    by_reason: dict[str, int]


class DeadLetterService:
    """Dead letters of one store, scoped per organization; re-drives through ``publisher``.

    Methods are synchronous store reads (run them off the event loop), except
    :meth:`redrive`, which runs its store calls in a thread itself."""

    def __init__(
        self, *, store: DeadLetterStore, publisher: EventPublisher, default_organization_id: str
    ):
        self.store = store
        self.publisher = publisher
        self.default_organization_id = default_organization_id

    def _scope(self, org: str) -> dict[str, Any]:
        return {
            "organization_id": org,
            "include_unattributed": org == self.default_organization_id,
        }

    def page(self, org: str, which: LetterFilter, *, page: int, per_page: int
             ) -> tuple[int, list[dict]]:
        """(how many letters match, those of page ``page`` (from 1) with payload previews),
        newest first."""
        filters = {**self._scope(org), **which.store_filters()}
        total = self.store.count_dead_letters(**filters)
        skip = (page - 1) * per_page
        letters = (
            self.store.dead_letters(**filters, limit=per_page, offset=skip,
                                    payload_limit=PAYLOAD_PREVIEW_BYTES)
            if skip < total else []
        )
        return total, letters

    def find(self, org: str, position: tuple[str, int, int]) -> dict | None:
        """One letter with its whole payload, by its source position (re-driven or not)."""
        found = self.store.dead_letters(**self._scope(org), position=position, limit=1)
        return found[0] if found else None

    async def redrive(self, org: str, which: LetterFilter, *, limit: int) -> Redriven:
        """Re-publish the original bytes of at most ``limit`` matching letters to the raw
        topic, then record them as re-driven, a chunk at a time."""
        filters = {**self._scope(org), **which.store_filters()}
        by_reason: dict[str, int] = {}
        redriven = 0
        while redriven < limit:  # a chunk at a time: memory stays bounded
            size = min(REDRIVE_CHUNK, limit - redriven)
            letters = await asyncio.to_thread(self.store.dead_letters, **filters, limit=size)
            if not letters:
                break
            await self.publisher.publish([redrive_record(d) for d in letters])  # in Kafka first
            await asyncio.to_thread(self.store.mark_redriven, letters)  # ... then recorded (a
            # crash between: sent twice, and the pipeline counts the second copy a duplicate)
            for d in letters:
                by_reason[d["error_code"]] = by_reason.get(d["error_code"], 0) + 1
            redriven += len(letters)
            if len(letters) < size:
                break
        return Redriven(redriven, by_reason)


def redrive_record(letter: dict) -> tuple[bytes, bytes]:
    """The raw-topic record of a letter: keyed as the API keys events when its ids are known
    (and fit the bounds), else unkeyed; the value is the original bytes."""
    org, sub = letter["organization_id"], letter["external_subscription_id"]
    if org and sub and len(org) <= MAX_ID_LENGTH and len(sub) <= MAX_ID_LENGTH:
        return partition_key(org, sub), letter["payload"]
    return b"", letter["payload"]
