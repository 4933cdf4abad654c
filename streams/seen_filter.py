"""A Bloom filter of stored dedup identities: which keys of a batch are worth looking up.

The dedup index (``dedup_keys``) is ordered by identity, and a batch's identities are random,
so looking all of them up reads nearly every granule of the index: the cost grows with the
number of keys stored. Most identities of a batch were never seen. This filter answers "maybe
seen" or "certainly not seen" in memory, so only the maybe-seen ones (the real duplicates plus
~0.5% false positives) go to the store.

There are no false negatives: an identity that was added is always reported as maybe seen.
Identities are BLAKE2b digests (uniform bits), so their own bytes serve as the hashes.
Memory: 16 bits per identity (10M identities take 20 MB). The filter grows in segments, each
twice the capacity of the one before; a lookup checks every segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sinks.store import IDENTITY_BYTES, pack_identities

BITS_PER_IDENTITY = 16
_BITS_SET = 8  # bits set per identity, all in one 64-bit word (a "blocked" Bloom filter)
_SIX_BITS = np.uint64(63)
_ONE = np.uint64(1)


def _halves(identities: bytes | bytearray | memoryview) -> tuple[np.ndarray, np.ndarray]:
    """The two 64-bit halves of each 16-byte identity in a packed buffer."""
    if len(identities) % IDENTITY_BYTES:
        raise ValueError(f"identities are {IDENTITY_BYTES} bytes each")
    pairs = np.frombuffer(identities, dtype="<u8").reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def _masks(high: np.ndarray) -> np.ndarray:
    """The 8 bit positions of each identity within its word, as a 64-bit mask."""
    masks = np.zeros(len(high), np.uint64)
    for i in range(_BITS_SET):
        masks |= _ONE << ((high >> np.uint64(6 * i)) & _SIX_BITS)
    return masks


class _Segment:
    """One fixed-size bit array, sized for ``capacity`` identities."""

    def __init__(self, capacity: int):
        words = max(1, capacity * BITS_PER_IDENTITY // 64)
        words = 1 << (words - 1).bit_length()  # a power of two: the word index is a bit mask
        self.capacity = capacity
        self.count = 0
        self.words = np.zeros(words, np.uint64)
        self._index_mask = np.uint64(words - 1)

    def add(self, low: np.ndarray, high: np.ndarray) -> None:
        np.bitwise_or.at(self.words, (low & self._index_mask).astype(np.intp), _masks(high))
        self.count += len(low)

    def contains(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        masks = _masks(high)
        found: np.ndarray = (self.words[(low & self._index_mask).astype(np.intp)] & masks) == masks
        return found


class SeenFilter:
    """The identities seen so far (no false negatives, ~0.5% false positives).

    ``since_ms``: the filter was loaded with the identities seen at or after this time; older
    stored identities are not in it (identities added later are, whatever their age), so it
    can only answer for lookups that ignore identities seen before ``since_ms``.
    """

    def __init__(self, capacity: int = 1 << 20, *, since_ms: int = 0):
        self._segments = [_Segment(capacity)]
        self.since_ms = since_ms

    def __len__(self) -> int:
        """How many identities were added (with repeats)."""
        return sum(s.count for s in self._segments)

    @property
    def nbytes(self) -> int:
        """Memory held by the bit arrays."""
        return sum(s.words.nbytes for s in self._segments)

    def add_packed(self, identities: bytes | bytearray | memoryview) -> None:
        """Add identities given as one buffer of 16-byte digests, end to end."""
        low, high = _halves(identities)
        start = 0
        while start < len(low):
            segment = self._segments[-1]
            room = segment.capacity - segment.count
            if room <= 0:
                segment = _Segment(2 * segment.capacity)
                self._segments.append(segment)
                room = segment.capacity
            segment.add(low[start:start + room], high[start:start + room])
            start += room

    def add(self, identities: Sequence[bytes]) -> None:
        """Add 16-byte identities."""
        if identities:
            self.add_packed(pack_identities(identities))

    def maybe_seen(self, identities: Sequence[bytes]) -> list[bytes]:
        """The identities that may have been added: all added ones, and a few others."""
        if not identities:
            return []
        low, high = _halves(pack_identities(identities))
        hits = np.zeros(len(low), bool)
        for segment in self._segments:
            if segment.count:
                hits |= segment.contains(low, high)
        return [identities[i] for i in np.flatnonzero(hits).tolist()]
