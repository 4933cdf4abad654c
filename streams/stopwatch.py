"""Wall and CPU seconds per named step of one batch, on the thread that runs the steps."""

from __future__ import annotations

import time


class Stopwatch:
    """Laps of consecutive steps: :meth:`lap` closes the step that began at the previous lap
    (or at creation). ``wall`` holds elapsed seconds per step, ``cpu`` the calling thread's
    CPU seconds (``time.thread_time``): their difference is time spent waiting, e.g. for the
    GIL or a core."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._wall = time.perf_counter()
        self._cpu = time.thread_time()

    def lap(self, step: str) -> None:
        """End ``step`` now (its times add up if it ran before)."""
        wall, cpu = time.perf_counter(), time.thread_time()
        self.wall[step] = self.wall.get(step, 0.0) + wall - self._wall
        self.cpu[step] = self.cpu.get(step, 0.0) + cpu - self._cpu
        self._wall, self._cpu = wall, cpu
