"""The VRRP state machine of RFC 3768 / RFC 9568 section 6.4, with keepalived's extensions.

States, timers and events are explicit and follow the RFC text. The machine reads the time and
sets timers only through the injected clock, and talks to the network only through `transmit`
(send one advertisement with the given priority) and `on_transition` (old, new state: the
instance moves VIPs, sends gratuitous ARP and runs notify scripts there), so that it runs the
same under a fake clock in the unit tests.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..config.model import DOWN_TIMER_ADVERTS
from .packet import MIN_ADVERT_INTERVAL, Advertisement, IPAddress
from .receive import RateLimitedLog

log = logging.getLogger("lvsagent.vrrp")

PRIORITY_OWNER = 255
PRIORITY_STOP = 0


class State(enum.Enum):
    INITIALIZE = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the machine needs of time: asyncio's loop has exactly this shape."""

    def monotonic(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], Any]) -> TimerHandle: ...


class LoopClock:
    """The real clock: the agent's event loop (monotonic time, timers at absolute times)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def monotonic(self) -> float:
        return self.loop.time()

    def call_at(self, when: float, callback: Callable[[], Any]) -> asyncio.TimerHandle:
        return self.loop.call_at(when, callback)


@dataclass
class MachineSettings:
    """The configuration the RFC state machine depends on."""

    name: str
    version: int = 2
    priority: int = 100
    advert_interval: float = 1.0
    preempt: bool = True
    preempt_delay: float = 0.0
    start_as_master: bool = False  # keepalived's `state MASTER`: do not wait Master_Down_Interval
    primary_address: IPAddress | None = None  # ours, for the equal-priority tie-break
    down_timer_adverts: int = DOWN_TIMER_ADVERTS  # keepalived's: the 3 of Master_Down_Interval
    lower_prio_no_advert: bool = False  # a master does not answer a lower priority advert
    higher_prio_send_advert: bool = False  # a master answers a higher one before it yields


class VrrpMachine:
    """One virtual router's state machine."""

    def __init__(
        self,
        settings: MachineSettings,
        clock: Clock,
        transmit: Callable[[int], None],
        on_transition: Callable[[State, State], None],
        on_lower_priority: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_lower_priority = on_lower_priority  # a master heard a lower priority advert
        self.clock = clock
        self.transmit = transmit
        self.on_transition = on_transition
        self.state = State.INITIALIZE
        self.effective_priority = settings.priority
        self.master_adver_interval = settings.advert_interval
        self.master_address: IPAddress | None = None
        self.fault_reasons: set[str] = set()
        self._adver_timer: TimerHandle | None = None
        self._adver_deadline = 0.0
        self._master_down_timer: TimerHandle | None = None
        self._master_down_since = 0.0
        self._master_down_skew_only = False
        self._preempt_until: float | None = None
        self._last_flip = float("-inf")  # when it last went MASTER -> BACKUP or back
        self._log = RateLimitedLog(clock, log)

    # -- derived timers (RFC 9568 6.1) ---------------------------------------------------------
    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def skew_time(self) -> float:
        if self.settings.version == 2:
            return (256 - self.effective_priority) / 256
        return (256 - self.effective_priority) * self.master_adver_interval / 256

    @property
    def master_down_interval(self) -> float:
        return self.settings.down_timer_adverts * self.master_adver_interval + self.skew_time

    # -- events ---------------------------------------------------------------------------------
    def startup(self) -> None:
        """Startup event of the Initialize state."""
        if self.fault_reasons:
            self._enter(State.FAULT)
        elif self.settings.priority == PRIORITY_OWNER or self.settings.start_as_master:
            self._become_master()
        else:
            self._become_backup()

    def reconfigure(self, settings: MachineSettings) -> None:
        """Reload: take new settings and keep the state; the running timers keep their start.

        The effective priority restarts from the configured one (tracking sets it again). A master
        sends its next advert one new interval after the last one (at once if that is past); a
        backup's Master_Down_Timer is recomputed from when it was last armed. start_as_master
        only matters at startup.
        """
        old, self.settings = self.settings, settings
        self.effective_priority = settings.priority
        if settings.preempt_delay != old.preempt_delay:
            self._preempt_until = None
        if self.state == State.MASTER:
            self.master_adver_interval = settings.advert_interval
            self.master_address = settings.primary_address
            last = self._adver_deadline - old.advert_interval
            self._schedule_adver(max(last + settings.advert_interval, self.clock.monotonic()))
        elif settings.version == 2 or self.master_address is None:
            self.master_adver_interval = settings.advert_interval  # v3 learns it from the master
        if self._master_down_timer is not None:
            self._set_master_down_timer()

    def shutdown(self) -> None:
        """Shutdown event: a master resigns with a priority-0 advertisement."""
        self._resign(State.INITIALIZE)

    def set_effective_priority(self, priority: int) -> None:
        """Tracking changed the priority (never for the address owner)."""
        if self.settings.priority == PRIORITY_OWNER:
            return
        self.effective_priority = max(1, min(254, priority))

    def add_fault(self, reason: str) -> None:
        """A tracked interface or script failed: the instance cannot serve (keepalived's FAULT)."""
        first = not self.fault_reasons
        self.fault_reasons.add(reason)
        if first and self.state in (State.BACKUP, State.MASTER):
            self._resign(State.FAULT)

    def clear_fault(self, reason: str) -> None:
        self.fault_reasons.discard(reason)
        if not self.fault_reasons and self.state == State.FAULT:
            if self.settings.priority == PRIORITY_OWNER:
                self._become_master()
            else:
                self._become_backup()

    def force_master(self) -> None:
        """A sync group member became master: follow it now."""
        if self.state == State.BACKUP:
            self._become_master()

    def force_backup(self) -> None:
        """A sync group member fell back to backup: follow it."""
        if self.state == State.MASTER:
            self._become_backup()

    def receive(self, advert: Advertisement, source: IPAddress) -> None:
        """An advertisement that passed the receive checks of section 7.1."""
        if self.state == State.BACKUP:
            self._backup_receive(advert, source)
        elif self.state == State.MASTER:
            self._master_receive(advert, source)

    # -- per-state receive rules (RFC 9568 6.4.2, 6.4.3) ---------------------------------------
    def _backup_receive(self, advert: Advertisement, source: IPAddress) -> None:
        now = self.clock.monotonic()
        if advert.priority == PRIORITY_STOP:
            self._arm_master_down(skew_only=True)
            return
        lower = advert.priority < self.effective_priority
        if lower and self.settings.preempt and not self._preempt_delay_running(now):
            self._log.log(
                "lower",
                logging.INFO,
                "(%s) received lower priority (%d) advert from %s - discarding",
                self.name,
                advert.priority,
                source,
            )
            return
        if self.settings.preempt_delay:
            self._track_preempt_delay(lower, now)
        self._adopt_interval(advert)
        self.master_address = source
        self._arm_master_down()

    def _master_receive(self, advert: Advertisement, source: IPAddress) -> None:
        """keepalived answers a lower priority with an advert (unless lower_prio_no_advert) and,
        with higher_prio_send_advert, a higher one too before it becomes backup."""
        if advert.priority == PRIORITY_STOP:
            self.transmit(self.effective_priority)
            self._schedule_adver(self.clock.monotonic() + self.settings.advert_interval)
            return
        ours = self.settings.primary_address
        higher = advert.priority > self.effective_priority or (
            advert.priority == self.effective_priority
            and ours is not None
            and source.version == ours.version
            and source > ours
        )
        if higher:
            if self.settings.higher_prio_send_advert:
                self.transmit(self.effective_priority)  # keepalived: before it steps down
            if self._flip_held():
                return  # the next advert of that master moves us, once the hold is over
            self._adopt_interval(advert)
            self.master_address = source
            self._become_backup()
            return
        answer = not self.settings.lower_prio_no_advert
        self._log.log(
            "forcing election",
            logging.INFO,
            "(%s) Received advert from %s with lower priority %d, ours %d%s",
            self.name,
            source,
            advert.priority,
            self.effective_priority,
            ", forcing new election" if answer else "",
        )
        if answer:
            self.transmit(self.effective_priority)
        if self.on_lower_priority is not None:
            self.on_lower_priority()

    def _adopt_interval(self, advert: Advertisement) -> None:
        """RFC 9568: a v3 backup times the master by the master's interval (never below the
        smallest one there is, whatever a packet says)."""
        if self.settings.version == 3:
            self.master_adver_interval = max(advert.interval, MIN_ADVERT_INTERVAL)

    def _flip_held(self) -> bool:
        """At most one MASTER <-> BACKUP flip per advert interval: a burst of hostile or
        confused adverts cannot make the VIPs flap faster than that."""
        return self.clock.monotonic() < self._last_flip + self.settings.advert_interval

    def _preempt_delay_running(self, now: float) -> bool:
        """Not yet started (the lower master was just seen) or not yet over."""
        if not self.settings.preempt_delay:
            return False
        return self._preempt_until is None or now < self._preempt_until

    def _track_preempt_delay(self, lower: bool, now: float) -> None:
        """keepalived's preempt_delay: a lower master is kept this long after it is first seen."""
        if not lower:
            if self._preempt_until is not None:
                log.info("(%s) stop preempt delay", self.name)
            self._preempt_until = None
        elif self._preempt_until is None:
            log.info("(%s) start preempt delay (%.2f)", self.name, self.settings.preempt_delay)
            self._preempt_until = now + self.settings.preempt_delay

    # -- transitions ----------------------------------------------------------------------------
    def _become_master(self) -> None:
        self._cancel_timers()
        self.master_adver_interval = self.settings.advert_interval
        self.master_address = self.settings.primary_address
        self._preempt_until = None
        self.transmit(self.effective_priority)
        self._schedule_adver(self.clock.monotonic() + self.settings.advert_interval)
        self._enter(State.MASTER)

    def _resign(self, new: State) -> None:
        """Stop the timers; a master says so with priority 0 so that a backup takes over at once."""
        was_master = self.state == State.MASTER
        self._cancel_timers()
        if was_master:
            self.transmit(PRIORITY_STOP)
        self._enter(new)

    def _become_backup(self) -> None:
        self._cancel_timers()
        self._arm_master_down()
        self._enter(State.BACKUP)

    def _enter(self, new: State) -> None:
        old, self.state = self.state, new
        if old == new:
            return
        if {old, new} == {State.MASTER, State.BACKUP}:
            self._last_flip = self.clock.monotonic()
        if new != State.INITIALIZE:
            log.info("(%s) Entering %s STATE", self.name, new.value)
        self.on_transition(old, new)

    # -- timers ---------------------------------------------------------------------------------
    def _arm_master_down(self, skew_only: bool = False) -> None:
        """Master_Down_Interval from now, or only Skew_Time after a priority-0 advert."""
        self._master_down_since = self.clock.monotonic()
        self._master_down_skew_only = skew_only
        self._set_master_down_timer()

    def _set_master_down_timer(self) -> None:
        if self._master_down_timer is not None:
            self._master_down_timer.cancel()
        delay = self.skew_time if self._master_down_skew_only else self.master_down_interval
        when = max(self._master_down_since + delay, self.clock.monotonic())
        self._master_down_timer = self.clock.call_at(when, self._master_down_expired)

    def _master_down_expired(self) -> None:
        self._master_down_timer = None
        if self.state != State.BACKUP:
            return
        if self._flip_held():
            hold_end = self._last_flip + self.settings.advert_interval
            self._master_down_timer = self.clock.call_at(hold_end, self._master_down_expired)
            return
        log.info("(%s) Receive advertisement timeout", self.name)
        self._become_master()

    def _schedule_adver(self, deadline: float) -> None:
        if self._adver_timer is not None:
            self._adver_timer.cancel()
        self._adver_deadline = deadline
        self._adver_timer = self.clock.call_at(deadline, self._adver_expired)

    def _adver_expired(self) -> None:
        """Send, then schedule from the ideal time so that the adverts do not drift.

        A loop that ran late skips the slots it missed instead of sending a burst.
        """
        self._adver_timer = None
        if self.state != State.MASTER:
            return
        self.transmit(self.effective_priority)
        interval = self.settings.advert_interval
        deadline = self._adver_deadline + interval
        now = self.clock.monotonic()
        if deadline <= now:
            deadline += ((now - deadline) // interval + 1) * interval
        self._schedule_adver(deadline)

    def _cancel_timers(self) -> None:
        for timer in (self._adver_timer, self._master_down_timer):
            if timer is not None:
                timer.cancel()
        self._adver_timer = self._master_down_timer = None
