"""What moves an instance's priority or puts it in FAULT: interface links and vrrp_scripts.

Links are watched through rtnetlink link events (no polling); scripts run as child processes
of the agent's one event loop, each on its own schedule with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import socket
import struct
from typing import Callable

from ..config.model import VrrpScript
from ..scripts import run_script, split_command

log = logging.getLogger("lvsagent.vrrp")

NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTM_NEWLINK = 16
RTM_DELLINK = 17
IFF_UP = 0x1
IFF_RUNNING = 0x40
SIOCGIFFLAGS = 0x8913
NLMSG_HEADER = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")


def link_is_up(ifname: str) -> bool:
    """Administratively up with carrier (what keepalived calls the interface being up)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            answer = fcntl.ioctl(
                probe.fileno(), SIOCGIFFLAGS, struct.pack("16sH", ifname.encode(), 0)
            )
    except OSError:
        return False
    flags = struct.unpack_from("H", answer, 16)[0]
    return bool(flags & IFF_UP and flags & IFF_RUNNING)


def parse_link_events(data: bytes) -> list[tuple[int, bool]]:
    """(ifindex, up) of each RTM_NEWLINK / RTM_DELLINK message in one netlink datagram."""
    events, offset = [], 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind = NLMSG_HEADER.unpack_from(data, offset)[:2]
        if length < NLMSG_HEADER.size:
            break
        body = offset + NLMSG_HEADER.size
        if kind in (RTM_NEWLINK, RTM_DELLINK) and body + IFINFOMSG.size <= len(data):
            ifindex, flags = IFINFOMSG.unpack_from(data, body)[2:4]
            up = kind == RTM_NEWLINK and bool(flags & IFF_UP and flags & IFF_RUNNING)
            events.append((ifindex, up))
        offset += (length + 3) & ~3
    return events


class LinkMonitor:
    """Calls `listener(ifname, up)` when a watched interface's link changes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._listeners: dict[str, list[Callable[[str, bool], None]]] = {}
        self._state: dict[str, bool] = {}
        self._index: dict[int, str] = {}
        self._sock: socket.socket | None = None

    def watch(self, ifname: str, listener: Callable[[str, bool], None]) -> bool:
        """Start watching; returns the link's state now."""
        if self._sock is None:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            self._sock.bind((0, RTMGRP_LINK))
            self._sock.setblocking(False)
            self.loop.add_reader(self._sock.fileno(), self._readable)
        self._listeners.setdefault(ifname, []).append(listener)
        self._state[ifname] = link_is_up(ifname)
        with contextlib.suppress(OSError):
            self._index[socket.if_nametoindex(ifname)] = ifname
        return self._state[ifname]

    def unwatch(self, listener: Callable[[str, bool], None]) -> None:
        for listeners in self._listeners.values():
            if listener in listeners:
                listeners.remove(listener)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except OSError:
            return
        for ifindex, up in parse_link_events(data):
            ifname = self._index.get(ifindex) or self._learn(ifindex)
            if ifname is None or self._state.get(ifname) == up:
                continue
            self._state[ifname] = up
            log.info("Netlink reports %s %s", ifname, "up" if up else "down")
            for listener in list(self._listeners.get(ifname, [])):
                listener(ifname, up)

    def _learn(self, ifindex: int) -> str | None:
        """A watched interface that did not exist yet when watching started."""
        try:
            ifname = socket.if_indextoname(ifindex)
        except OSError:
            return None
        if ifname not in self._listeners:
            return None
        self._index[ifindex] = ifname
        return ifname

    def close(self) -> None:
        if self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


class ScriptTracker:
    """Runs one vrrp_script every `interval`; `rise` successes / `fall` failures flip its state."""

    def __init__(self, script: VrrpScript, loop: asyncio.AbstractEventLoop) -> None:
        self.script = script
        self.loop = loop
        self.ok = not script.init_fail
        self._streak = 0
        self._trouble = ""  # why the last run did not finish (timeout, refused...)
        self._listeners: list[Callable[[str, bool], None]] = []
        self._task: asyncio.Task | None = None

    def subscribe(self, listener: Callable[[str, bool], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[str, bool], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def start(self) -> None:
        if self._task is None:
            self._task = self.loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        """Run on a fixed schedule (from the ideal start times) so checks do not drift."""
        deadline = self.loop.time()
        while True:
            self.record(await self.run_once())
            deadline += self.script.interval
            await asyncio.sleep(max(0.0, deadline - self.loop.time()))

    async def run_once(self) -> bool:
        timeout = self.script.timeout or self.script.interval
        outcome = await run_script(split_command(self.script.script), self.script.run_as, timeout)
        trouble = outcome.error if outcome.code is None or outcome.code < 0 else ""
        if trouble and trouble != self._trouble:  # once, not every interval
            log.warning("VRRP_Script(%s) %s", self.script.name, trouble)
        self._trouble = trouble
        return outcome.ok

    def record(self, success: bool) -> None:
        """Count toward rise/fall; tell the listeners when the state flips."""
        if success == self.ok:
            self._streak = 0
            return
        self._streak += 1
        if self._streak < (self.script.rise if success else self.script.fall):
            return
        self._streak = 0
        self.ok = success
        log.info("VRRP_Script(%s) %s", self.script.name, "succeeded" if success else "failed")
        for listener in list(self._listeners):
            listener(self.script.name, success)
