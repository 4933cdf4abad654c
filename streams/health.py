"""Is the pipeline making progress? Stall detection behind ``/ready`` and its metrics.

A partition is *stalled* when it has messages to process (broker lag) or a batch in hand, and
no batch of it has committed for ``stall_seconds``; every assigned partition is stalled once
the store has been failing for that long (the pipeline retries a failing store forever and
never drops a batch, so a long outage shows here, not as lost data).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class PipelineHealth:
    """Progress per partition and the state of the store, as the pipeline reports them."""

    stall_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    consuming: bool = False  # joined the group (an assignment happened, possibly empty)
    failing_since: float | None = None  # first store failure of the current run of them
    last_error: str = ""
    last_progress: dict[int, float] = field(default_factory=dict)  # commit or assignment
    last_commit: dict[int, float] = field(default_factory=dict)
    lag: dict[int, int] = field(default_factory=dict)  # broker end offset − next to commit
    in_hand: set[int] = field(default_factory=set)  # partitions with a batch being written

    def assigned(self, partitions: Iterable[int]) -> None:
        """Partitions this worker now owns: their clock starts now."""
        now = self.clock()
        self.consuming = True
        for p in partitions:
            self.last_progress[p] = now

    def revoked(self, partitions: Iterable[int]) -> None:
        """Partitions moved away: forget them."""
        for p in partitions:
            for table in (self.last_progress, self.last_commit, self.lag):
                table.pop(p, None)
            self.in_hand.discard(p)

    def committed(self, partitions: Iterable[int]) -> None:
        """A batch holding these partitions committed."""
        now = self.clock()
        for p in partitions:
            self.last_progress[p] = self.last_commit[p] = now

    def store_failed(self, error: str) -> None:
        """A store call failed (it is retried)."""
        if self.failing_since is None:
            self.failing_since = self.clock()
        self.last_error = error

    def store_ok(self) -> None:
        """A store call succeeded."""
        self.failing_since = None

    def store_failing_for(self) -> float:
        """Seconds the store has been failing (0 when it works)."""
        return 0.0 if self.failing_since is None else self.clock() - self.failing_since

    def stalled_partitions(self) -> list[int]:
        """Assigned partitions with work to do and no progress for ``stall_seconds``."""
        now = self.clock()
        if self.store_failing_for() >= self.stall_seconds:
            return sorted(self.last_progress)
        return sorted(
            p for p, at in self.last_progress.items()
            if now - at >= self.stall_seconds and (self.lag.get(p, 0) > 0 or p in self.in_hand)
        )

    def seconds_since_commit(self, partition: int) -> float | None:
        """Seconds since this worker last committed a batch of ``partition`` (None: never)."""
        at = self.last_commit.get(partition)
        return None if at is None else self.clock() - at
