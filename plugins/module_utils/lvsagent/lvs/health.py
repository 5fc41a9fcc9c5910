"""Health state as keepalived keeps it: per checker (retries), per virtual server (quorum).

`CheckState` and `Quorum` are pure logic fed with results and weights, so they are tested
with no network and no clock. `HealthCheck` runs one checker on the event loop, sleeping
through the injected clock (the VRRP engine's shape: `monotonic()` and `call_at()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..durations import Durations
from .checkers import KINDS, CheckResult, CheckSpec, probe

log = logging.getLogger("lvsagent.lvs")


@dataclass
class Outcome:
    """What one probe result means: when to probe next, and what changed."""

    delay: float
    changed: bool = False  # up/down or dynamic weight changed
    messages: list[str] = field(default_factory=list)


class CheckState:
    """One checker's up/down state with keepalived's retry rule.

    While up, a failure is retried `retry` times, `delay_before_retry` apart, before the
    checker goes down; while down, one success brings it back up. With alpha the checker
    starts down, otherwise up.
    """

    def __init__(self, spec: CheckSpec):
        self.spec = spec
        self.up = not spec.alpha
        self.has_run = False
        self.retries_done = 0
        self.last_error = ""
        self.failures = 0  # failed probes since the check started (retries included)
        self.failure_reasons: Counter = Counter()  # the same, by reason (base.FAILURE_REASONS)
        self.weight: Optional[int] = None  # set by a misc_dynamic exit status
        self.offset = 0  # added to the real server's weight by a FILE_CHECK's value

    def record(self, result: CheckResult) -> Outcome:
        spec = self.spec
        first_run = not self.has_run
        self.has_run = True
        if result.ok:
            self.retries_done = 0
            self.last_error = ""
            weight_changed = result.weight is not None and result.weight != self.weight
            weight_changed = weight_changed or result.offset != self.offset
            if result.weight is not None:
                self.weight = result.weight
            self.offset = result.offset
            if not self.up:
                self.up = True
                return Outcome(spec.delay_loop, True, [KINDS[spec.kind].succeeded(spec)])
            return Outcome(spec.delay_loop, weight_changed)
        self.last_error = result.error
        self.failures += 1
        self.failure_reasons[result.reason or "other"] += 1
        attempt = KINDS[spec.kind].failed(spec, result.error)
        if not self.up:
            return Outcome(spec.delay_loop, False, [attempt] if first_run else [])
        if self.retries_done < spec.retry:
            self.retries_done += 1
            return Outcome(spec.delay_before_retry, False, [attempt])
        self.retries_done = 0
        self.up = False
        if spec.retry:
            verdict = f"Check on service {spec.target} failed after {spec.retry} retries."
        else:
            verdict = f"Check on service {spec.target} failed."
        return Outcome(spec.delay_loop, True, [attempt, verdict])


async def sleep(clock, seconds: float) -> None:
    """Sleeps on the injected clock, so a fake clock drives the checks in unit tests."""
    future = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    handle = clock.call_at(clock.monotonic() + seconds, wake)
    try:
        await future
    finally:
        handle.cancel()


def first_delay(spec: CheckSpec, rng: random.Random) -> float:
    """warmup: a random start delay up to `warmup` (default delay_loop) spreads the checks."""
    ceiling = spec.delay_loop if spec.warmup is None else spec.warmup
    return rng.uniform(0, ceiling) if ceiling > 0 else 0.0


class HealthCheck:
    """Runs one checker on the loop; calls `on_change(self)` on up/down or weight.
    `durations` holds how long its probes took (on the injected clock).

    Between probes a check is one timer on the clock, and a task lives only while a probe
    runs: ten thousand real servers cost ten thousand timers, not ten thousand sleeping
    coroutines.
    """

    def __init__(
        self,
        spec: CheckSpec,
        clock,
        on_change: Callable[[HealthCheck], None],
        *,
        rng: random.Random,
        prober: Callable[[CheckSpec], Awaitable[CheckResult]] = probe,
    ):
        self.spec = spec
        self.state = CheckState(spec)
        self._clock = clock
        self._on_change = on_change
        self._rng = rng
        self._prober = prober
        self.durations = Durations()
        self._suspended = False
        self._due = False  # a probe came due while suspended
        self._timer = None  # the clock's handle of the next probe
        self._task: Optional[asyncio.Task] = None  # preparing, or probing

    @property
    def up(self) -> bool:
        return self.state.up

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._prepare())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = False
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def set_suspended(self, suspended: bool) -> None:
        """ha_suspend: no probes while the virtual server's address is not ours."""
        self._suspended = suspended
        if not suspended and self._due:
            self._due = False
            self._probe_now()

    async def _prepare(self) -> None:
        await KINDS[self.spec.kind].prepare(self.spec)
        self._task = None
        self._schedule(first_delay(self.spec, self._rng))

    def _schedule(self, delay: float) -> None:
        self._timer = self._clock.call_at(self._clock.monotonic() + delay, self._probe_now)

    def _probe_now(self) -> None:
        self._timer = None
        if self._suspended:
            self._due = True
        else:
            self._task = asyncio.ensure_future(self._probe())

    async def _probe(self) -> None:
        started = self._clock.monotonic()
        result = await self._prober(self.spec)
        self.durations.observe(self._clock.monotonic() - started)
        outcome = self.state.record(result)
        for message in outcome.messages:
            log.info("%s", message)
        if outcome.changed:
            try:
                self._on_change(self)
            except Exception:
                log.exception("health change of %s not applied", self.spec.target)
        self._task = None
        self._schedule(outcome.delay)


class Quorum:
    """A virtual server's quorum with hysteresis (keepalived's flap dampener)."""

    def __init__(self, quorum: int, hysteresis: int, weight_sum: int):
        self.quorum = quorum
        self.hysteresis = hysteresis
        self.up = weight_sum >= quorum
        self.weight_sum = weight_sum

    def update(self, weight_sum: int) -> Optional[str]:
        """Returns keepalived's "Gained quorum ..."/"Lost quorum ..." text on a transition."""
        self.weight_sum = weight_sum
        gain_at = self.quorum + self.hysteresis
        lose_below = self.quorum - self.hysteresis
        if not self.up and weight_sum >= gain_at:
            self.up = True
            return f"Gained quorum {self.quorum}+{self.hysteresis}={gain_at} <= {weight_sum}"
        if self.up and (weight_sum == 0 or weight_sum < lose_below):
            self.up = False
            return f"Lost quorum {self.quorum}-{self.hysteresis}={lose_below} > {weight_sum}"
        return None
