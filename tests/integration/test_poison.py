"""Poison isolation (issue 16, finding 1): a batch the store refuses for the data of a few
messages never stops its partition. Those messages become dead letters, the rest of the batch
is written, exactly once, even when the worker dies half-way through the rewrite.

The edge bounds (schemas.bounds) keep such values out in the first place; to reach the
store's own refusal, this test lifts them, so the poison gets to the real ClickHouse engine.
"""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from schemas import event, event_json
from streams.pipeline import VALUE_OUT_OF_RANGE
from tests.integration.test_faults import SUBSCRIPTIONS, Harness, start, stop
from tests.integration.workload import ORG, make_workload

pytestmark = pytest.mark.integration


class Crash(BaseException):
    """The worker dies here (not an Exception: nothing in the pipeline catches it)."""


class CrashingStore:
    """The real store, except that the worker dies at the second write of a rewritten batch:
    after the refused batch's rows are deleted and part of its revision is written."""

    def __init__(self, store):
        self.store = store
        self.revision_writes = 0

    def write_part(self, batch, part, token):
        if ":q" in token and batch.rows(part):
            self.revision_writes += 1
            if self.revision_writes == 2:
                raise Crash(token)
        return self.store.write_part(batch, part, token)

    def __getattr__(self, name):
        return getattr(self.store, name)


def poison_messages(count: int) -> list[tuple[bytes, bytes]]:
    """Events whose values no column can hold: a dynamic amount and a metric value of 1e400."""
    out = []
    for i in range(count):
        sub = f"s{i % SUBSCRIPTIONS}"
        body = {"organization_id": ORG, "transaction_id": f"poison{i}",
                "external_subscription_id": sub, "timestamp": "2026-12-01T00:00:00Z"}
        if i % 2:
            body.update(code="calls", precise_total_amount_cents="1e400")
        else:
            body.update(code="gb", properties={"gb": "1e400", "region": "eu"})
        out.append((f"{ORG}-{sub}".encode(), orjson.dumps(body)))
    return out


def lift_edge_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accept any finite decimal at the edge, so 1e400 reaches the store."""
    import enrichment.enricher

    for module in (event, event_json, enrichment.enricher):
        monkeypatch.setattr(module, "decimal_fits", lambda value: value.is_finite())


def test_poison_among_thousands_of_good_events_with_a_crash_mid_quarantine(
    kafka_bootstrap, tmp_path, monkeypatch
):
    lift_edge_bounds(monkeypatch)
    harness = Harness(kafka_bootstrap, tmp_path)
    workload = make_workload(5000, subscriptions=SUBSCRIPTIONS, seed=21)
    poison = poison_messages(12)
    messages = list(workload.messages)
    rng = random.Random(4)
    for message in poison:
        messages.insert(rng.randrange(len(messages)), message)

    async def scenario() -> tuple[int, int]:
        await harness.setup()
        crashing = CrashingStore(harness.store)
        first = harness.worker(crashing)
        first_task = await start(first)
        harness.produce(messages)
        with pytest.raises(Crash):
            await asyncio.wait_for(first_task, 120)
        # dead, not stopped: no batch in hand is finished; only its connections go
        assert first._fetcher is not None
        await first._fetcher.close(leave_group=False)
        await first._producer.stop()
        await first._gc.stop()  # the process's garbage collector policy dies with it too
        second = harness.worker()
        second_task = await start(second)
        await harness.wait_consumed(len(messages))
        await stop(second, second_task)
        return crashing.revision_writes, int(second.metrics.quarantined._value.get())

    revision_writes, quarantined = asyncio.run(scenario())
    try:
        assert revision_writes == 2  # the crash came in the middle of a rewrite
        assert quarantined >= 1  # the restarted worker found the poison in the store's refusal
        harness.check_exact(workload, dead_letters=len(poison))
        store = harness.store
        letters = store.dead_letters(limit=100)
        assert sorted(d["transaction_id"] for d in letters) == sorted(
            orjson.loads(v)["transaction_id"] for _, v in poison)  # each once
        assert {d["error_code"] for d in letters} == {VALUE_OUT_OF_RANGE}
        # nothing the interrupted rewrite wrote is left twice
        for table in ("events", "dedup_keys"):
            rows = store.scalar(f"SELECT count() FROM {store.database}.{table}")
            assert rows == str(workload.expected.unique), table
    finally:
        harness.store.close()
