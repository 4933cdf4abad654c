"""The poison search (streams.poison): which messages make the store refuse a batch."""

from __future__ import annotations

import pytest

from streams.poison import find_poison


def refusing(bad: set[int], limit: int | None = None):
    """A probe refusing any subset holding a message of ``bad``, or whose sum passes
    ``limit`` (valid values whose total overflows), and counting its calls."""
    calls = []

    def probe(subset):
        calls.append(len(subset))
        hit = [m for m in subset if m in bad]
        if hit:
            return f"refused {hit[0]}"
        if limit is not None and sum(subset) > limit:
            return "overflow"
        return None

    return probe, calls


def test_nothing_refused_finds_nothing():
    probe, calls = refusing(set())
    assert find_poison(list(range(100)), probe) == {}
    assert calls == [100]


@pytest.mark.parametrize("bad", [{0}, {999}, {3, 500, 501}, set(range(10, 20))])
def test_every_refused_message_is_found(bad):
    messages = list(range(1000))
    probe, calls = refusing(bad)
    found = find_poison(messages, probe)
    assert set(found) == bad  # indexes == values here
    assert all(found[i] == f"refused {i}" for i in bad)
    assert sum(calls) <= 2 * len(messages) * len(bad) + 2 * len(messages)


def test_a_sum_that_overflows_names_the_message_that_tips_it_over():
    messages = [1] * 10  # 10 valid values; the store holds a sum of 7 at most
    probe, _ = refusing(set(), limit=7)
    found = find_poison(messages, probe)
    assert list(found) == [7] and found[7] == "overflow"
