"""A fake clock with the shape the engines take (`monotonic`, `call_at`), driven by the test."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterator


class FakeTimer:
    def __init__(self, when, callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class FakeClock:
    """Time moves only when the test says; timers run in order of their deadlines."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self._queue: list = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def call_at(self, when, callback):
        timer = FakeTimer(when, callback)
        heapq.heappush(self._queue, (when, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Run every timer due within `seconds`, each at its own time."""
        for _timer in self._run_due(self.now + seconds):
            pass

    async def advance_with_tasks(self, seconds: float) -> None:
        """As advance(), and asyncio tasks sleeping on the clock run after each timer."""
        await settle()
        for _timer in self._run_due(self.now + seconds):
            await settle()
        await settle()

    def stall(self, seconds: float) -> None:
        """The loop was busy: time passes and no timer runs until the next advance()."""
        self.now += seconds

    def pending(self) -> list[float]:
        return sorted(when for when, _order, timer in self._queue if not timer.cancelled)

    def _run_due(self, end: float) -> Iterator[FakeTimer]:
        """Runs the timers due by `end`, yielding after each; the clock then reads `end`."""
        while self._queue and self._queue[0][0] <= end:
            when, _order, timer = heapq.heappop(self._queue)
            if timer.cancelled:
                continue
            self.now = max(self.now, when)
            timer.callback()
            yield timer
        self.now = end


async def settle() -> None:
    """Let every runnable task run until it waits on the clock again."""
    for _round in range(30):
        await asyncio.sleep(0)
