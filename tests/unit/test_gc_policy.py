"""The worker's timed garbage collection: automatic collection off, full ones on a timer."""

from __future__ import annotations

import asyncio
import gc
import weakref

from streams.gc_policy import TimedCollector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def make_cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_automatic_collection_is_off_while_started_and_a_timer_collects_cycles() -> None:
    durations: list[float] = []

    async def scenario() -> None:
        collector = TimedCollector(0.05, durations.append)
        collector.start()
        assert not gc.isenabled()
        cycle = make_cycle()
        assert cycle() is not None  # a cycle outlives its last reference
        for _ in range(100):  # the timer runs a full collection within ~0.05 s
            await asyncio.sleep(0.02)
            if cycle() is None:
                break
        assert cycle() is None
        await collector.stop()

    assert gc.isenabled()
    asyncio.run(scenario())
    assert gc.isenabled()  # restored
    assert durations and all(d >= 0 for d in durations)


def test_stop_keeps_a_collector_that_was_already_off_off() -> None:
    async def scenario() -> None:
        collector = TimedCollector(10.0)
        collector.start()
        await collector.stop()

    gc.disable()
    try:
        asyncio.run(scenario())
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_zero_interval_leaves_the_automatic_collector_alone() -> None:
    async def scenario() -> None:
        collector = TimedCollector(0)
        collector.start()
        assert gc.isenabled()
        await collector.stop()
        assert gc.isenabled()

    asyncio.run(scenario())
