"""vrrp_track_process: how many processes match, against a quorum, moves an instance.

keepalived follows process events through the kernel's proc connector; this agent scans /proc
once every SCAN_INTERVAL, in a worker thread, for all the trackers at once (one scan however
many blocks), so a process that starts or dies is seen within SCAN_INTERVAL, then fork_delay or
terminate_delay apply as in keepalived. Zombies do not count. A process is matched as keepalived
does: by its name (/proc/PID/comm) exactly, or, with parameters, param_match or full_command, by
its command line: argv[0] exactly, then the parameters (exact: the same ones; partial: the
first ones; initial: the first ones, the last given being a prefix of the process's).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

from ..config.model import TrackProcess
from .machine import LoopClock
from .tracked import Listeners, cancelled, repeat

log = logging.getLogger("lvsagent.vrrp")

SCAN_INTERVAL = 1.0  # seconds between two scans of /proc
PROC = "/proc"


@dataclass(frozen=True)
class Process:
    comm: str
    cmdline: bytes  # NUL-separated argv, as in /proc/PID/cmdline; b"" when not read


def matches_command_line(track: TrackProcess) -> bool:
    return track.full_command or bool(track.params) or track.param_match is not None


def read_processes(proc: str, with_cmdline: bool) -> list[Process]:
    """Every process that is not a zombie (a worker thread runs this)."""
    found = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return found
    for pid in entries:
        if not pid.isdigit():
            continue
        try:
            with open(f"{proc}/{pid}/stat", "rb") as stat:
                text = stat.read()
            head, _paren, tail = text.rpartition(b")")
            comm = head.split(b"(", 1)[1].decode(errors="replace")
            if tail.split()[0] in (b"Z", b"X"):
                continue
            cmdline = b""
            if with_cmdline:
                with open(f"{proc}/{pid}/cmdline", "rb") as command:
                    cmdline = command.read()
        except (OSError, IndexError):
            continue  # gone meanwhile
        found.append(Process(comm, cmdline))
    return found


def process_matches(track: TrackProcess, process: Process) -> bool:
    if not matches_command_line(track):
        return process.comm == track.process
    program, _nul, arguments = process.cmdline.partition(b"\0")
    if program != os.fsencode(track.process):
        return False
    wanted = b"".join(os.fsencode(param) + b"\0" for param in track.params)
    mode = track.param_match
    if mode is None:
        return True
    if mode == "exact":
        return arguments == wanted
    if len(arguments) < len(wanted):
        return False
    if mode == "partial":
        return arguments.startswith(wanted)
    return arguments.startswith(wanted[:-1])  # initial: the last one may go on


class ProcessTracker(Listeners):
    """One vrrp_track_process; tells its listeners `(name, ok)` when the quorum is won or
    lost (after fork_delay / terminate_delay)."""

    def __init__(self, track: TrackProcess, clock: Any) -> None:
        super().__init__()
        self.track = track
        self.clock = clock  # monotonic() and call_at(), as the state machine's
        self.ok: Optional[bool] = None  # None until the first scan
        self.count = 0
        self._pending: Any = None  # the timer of a delayed change

    @property
    def state(self) -> bool:
        return bool(self.ok)

    def has_quorum(self) -> bool:
        track = self.track
        return track.quorum <= self.count and (
            track.quorum_max is None or self.count <= track.quorum_max
        )

    def record(self, processes: list[Process]) -> None:
        """A new scan: count the matches; a change of quorum waits its delay, and is dropped
        when the quorum is back as it was meanwhile."""
        self.count = sum(1 for process in processes if process_matches(self.track, process))
        quorum = self.has_quorum()
        if self.ok is None:
            self.ok = quorum
            return
        if quorum == self.ok:
            self._cancel()
            return
        if self._pending is not None:
            return
        delay = self.track.fork_delay if quorum else self.track.terminate_delay
        if delay:
            self._pending = self.clock.call_at(self.clock.monotonic() + delay, self._settle)
        else:
            self._flip(quorum)

    def _settle(self) -> None:
        self._pending = None
        quorum = self.has_quorum()
        if quorum != self.ok:
            self._flip(quorum)

    def _flip(self, quorum: bool) -> None:
        self.ok = quorum
        state = "gained" if quorum else "lost"
        name = self.track.name
        log.info("VRRP_Track_Process(%s) quorum %s (%d running)", name, state, self.count)
        self.tell(name, quorum)

    def _cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def close(self) -> None:
        self._cancel()


class ProcessWatch:
    """Scans /proc for every ProcessTracker it holds; runs only while it holds some."""

    def __init__(self, loop: asyncio.AbstractEventLoop, proc: str = PROC) -> None:
        self.loop = loop
        self.proc = proc
        self.trackers: dict[str, ProcessTracker] = {}
        self._task: Optional[asyncio.Task] = None

    async def add(self, track: TrackProcess) -> ProcessTracker:
        """Track a block; its state is known (one scan done) when this returns."""
        tracker = ProcessTracker(track, LoopClock(self.loop))
        self.trackers[track.name] = tracker
        await self.scan()
        if self._task is None:
            self._task = self.loop.create_task(repeat(SCAN_INTERVAL, self.scan))
        return tracker

    async def remove(self, name: str) -> None:
        tracker = self.trackers.pop(name, None)
        if tracker is not None:
            tracker.close()
        if not self.trackers:
            await self.stop()

    async def stop(self) -> None:
        await cancelled(self._task)
        self._task = None

    async def scan(self) -> None:
        with_cmdline = any(matches_command_line(t.track) for t in self.trackers.values())
        processes = await asyncio.to_thread(read_processes, self.proc, with_cmdline)
        for tracker in list(self.trackers.values()):
            tracker.record(processes)
