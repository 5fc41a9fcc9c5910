"""A fake clock with the shape of asyncio's loop (`monotonic`, `call_at`), driven by the test."""

from __future__ import annotations

import heapq
import itertools

import pytest


class FakeTimer:
    def __init__(self, when, callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class FakeClock:
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
        end = self.now + seconds
        while self._queue and self._queue[0][0] <= end:
            when, _, timer = heapq.heappop(self._queue)
            if timer.cancelled:
                continue
            self.now = max(self.now, when)
            timer.callback()
        self.now = end

    def stall(self, seconds: float) -> None:
        """The loop was busy: time passes and no timer runs until the next advance()."""
        self.now += seconds

    def pending(self) -> list[float]:
        return sorted(when for when, _, timer in self._queue if not timer.cancelled)


@pytest.fixture
def clock():
    return FakeClock()
