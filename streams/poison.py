"""Which messages make the store refuse a batch? A bisection over trial runs.

The store refuses a batch when a value cannot be held (a number too large for its column…).
``probe(messages)`` runs the batch's writes for ``messages`` without writing (see
``SqlStore.check_insert``) and returns the refusal, or None. The search halves the messages
until single messages are refused. When two halves pass but their union does not (a sum of
valid values overflowing a column), the message that tips the union over is the culprit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

M = TypeVar("M")
E = TypeVar("E")


def find_poison(messages: Sequence[M], probe: Callable[[Sequence[M]], E | None]) -> dict[int, E]:
    """Index in ``messages`` → refusal, for the messages behind the store's refusal.

    Empty when ``probe`` accepts all of them. Probes about 2·log2(n) subsets per culprit.
    """
    found: dict[int, E] = {}
    first = probe(messages)
    if first is not None:
        _search(list(range(len(messages))), first, messages, probe, found)
    return found


def _search(
    indexes: list[int], refusal: E, messages: Sequence[M],
    probe: Callable[[Sequence[M]], E | None], found: dict[int, E],
) -> None:
    """``indexes`` (refused together with ``refusal``) hold at least one culprit: find them."""
    if len(indexes) == 1:
        found[indexes[0]] = refusal
        return
    middle = len(indexes) // 2
    halves = (indexes[:middle], indexes[middle:])
    refusals = [probe([messages[i] for i in half]) for half in halves]
    for half, half_refusal in zip(halves, refusals, strict=True):
        if half_refusal is not None:
            _search(half, half_refusal, messages, probe, found)
    if all(r is None for r in refusals):
        tipping, tipping_refusal = _tipping_point(indexes, refusal, messages, probe)
        found[tipping] = tipping_refusal


def _tipping_point(
    indexes: list[int], refusal: E, messages: Sequence[M],
    probe: Callable[[Sequence[M]], E | None],
) -> tuple[int, E]:
    """The first message whose prefix is refused (its own prefix without it passes)."""
    low, high = 1, len(indexes)  # the prefix of ``high`` messages is refused
    while low < high:
        middle = (low + high) // 2
        found = probe([messages[i] for i in indexes[:middle]])
        if found is None:
            low = middle + 1
        else:
            high, refusal = middle, found
    return indexes[high - 1], refusal
