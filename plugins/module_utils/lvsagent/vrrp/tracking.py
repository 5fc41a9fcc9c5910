"""What moves an instance's priority or puts it in FAULT: interface links and vrrp_scripts.

Links are watched by name through rtnetlink link events (no polling); scripts run as child
processes of the agent's one event loop, each on its own schedule with a timeout.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ..config.model import VrrpScript
from ..durations import Durations
from ..scripts import run_script, split_command
from .tracked import Listeners, cancelled

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
RTATTR = struct.Struct("=HH")
IFLA_IFNAME = 3


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


@dataclass(frozen=True)
class Link:
    """An interface as the monitor knows it: its index (None: no such interface) and state."""

    index: Optional[int]
    up: bool


GONE = Link(None, False)


def read_link(ifname: str) -> Link:
    """The interface's state now, asked of the kernel (not from events)."""
    try:
        index = socket.if_nametoindex(ifname)
    except OSError:
        return GONE
    return Link(index, link_is_up(ifname))


@dataclass(frozen=True)
class LinkEvent:
    """One RTM_NEWLINK / RTM_DELLINK message."""

    index: int
    ifname: Optional[str]
    up: bool
    deleted: bool


def _ifname_attribute(data: bytes, start: int, end: int) -> Optional[str]:
    """IFLA_IFNAME among the attributes that follow the ifinfomsg."""
    offset = start
    while offset + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size or offset + length > end:
            return None
        if kind == IFLA_IFNAME:
            value = data[offset + RTATTR.size : offset + length]
            return value.split(b"\0", 1)[0].decode(errors="replace") or None
        offset += (length + 3) & ~3
    return None


def parse_link_events(data: bytes) -> list[LinkEvent]:
    """The link messages of one netlink datagram; anything else or malformed is skipped."""
    events, offset = [], 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind = NLMSG_HEADER.unpack_from(data, offset)[:2]
        if length < NLMSG_HEADER.size:
            break
        body = offset + NLMSG_HEADER.size
        end = min(offset + length, len(data))
        if kind in (RTM_NEWLINK, RTM_DELLINK) and body + IFINFOMSG.size <= end:
            ifindex, flags = IFINFOMSG.unpack_from(data, body)[2:4]
            deleted = kind == RTM_DELLINK
            up = not deleted and bool(flags & IFF_UP and flags & IFF_RUNNING)
            ifname = _ifname_attribute(data, body + IFINFOMSG.size, end)
            events.append(LinkEvent(ifindex, ifname, up, deleted))
        offset += (length + 3) & ~3
    return events


def open_link_socket() -> socket.socket:
    """rtnetlink, subscribed to the link group, non-blocking."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.bind((0, RTMGRP_LINK))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


LinkListener = Callable[[str, Link], None]


class LinkMonitor:
    """Calls `listener(ifname, link)` when a watched interface goes down or up, is deleted, or
    comes back (then with a new index). Interfaces are watched by name, as keepalived does: one
    deleted and re-created is the same interface again.

    When the kernel could not queue every event (ENOBUFS: the socket's buffer overran) some
    changes were lost, so every watched interface is read again and the differences reported.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        probe: Callable[[str], Link] = read_link,
        open_socket: Callable[[], socket.socket] = open_link_socket,
    ) -> None:
        self.loop = loop
        self.probe = probe
        self.open_socket = open_socket
        self.overruns = 0
        self._listeners: dict[str, list[LinkListener]] = {}
        self._links: dict[str, Link] = {}
        self._sock: Optional[socket.socket] = None

    def watch(self, ifname: str, listener: LinkListener) -> Link:
        """Start watching; returns the link as known now."""
        if self._sock is None:
            self._sock = self.open_socket()
            self.loop.add_reader(self._sock.fileno(), self._readable)
        self._listeners.setdefault(ifname, []).append(listener)
        if ifname not in self._links:
            self._links[ifname] = self.probe(ifname)
        return self._links[ifname]

    def unwatch(self, listener: LinkListener) -> None:
        for listeners in self._listeners.values():
            if listener in listeners:
                listeners.remove(listener)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno == errno.ENOBUFS:
                self._overrun(error)
            else:
                log.debug("Netlink: recv error on monitor socket - (%s)", error.strerror)
            return
        for event in parse_link_events(data):
            self._apply_event(event)

    def _apply_event(self, event: LinkEvent) -> None:
        for ifname, link in list(self._links.items()):
            if link.index == event.index and event.ifname not in (None, ifname):
                self._update(ifname, GONE)  # renamed away: the name is free again
        ifname = event.ifname or self._name_of(event.index)
        if ifname not in self._links:
            return
        self._update(ifname, GONE if event.deleted else Link(event.index, event.up))

    def _name_of(self, index: int) -> Optional[str]:
        return next((name for name, link in self._links.items() if link.index == index), None)

    def _overrun(self, error: OSError) -> None:
        """Events were lost: log (once) and read every watched interface again."""
        self.overruns += 1
        level = logging.WARNING if self.overruns == 1 else logging.DEBUG
        log.log(level, "Netlink: Receive buffer overrun on monitor socket - (%s)", error.strerror)
        self.resync()

    def resync(self) -> None:
        """Read every watched interface and report what differs from what was known."""
        for ifname in list(self._links):
            self._update(ifname, self.probe(ifname))

    def _update(self, ifname: str, link: Link) -> None:
        old = self._links[ifname]
        if link == old:
            return
        self._links[ifname] = link
        if old.up and not link.up:
            log.info("Netlink reports %s down", ifname)
        if old.index is not None and link.index != old.index:
            log.info("Interface %s deleted", ifname)
        if link.index is not None and link.index != old.index:
            log.info("Interface %s added", ifname)
        if link.up and not old.up:
            log.info("Netlink reports %s up", ifname)
        for listener in list(self._listeners.get(ifname, [])):
            listener(ifname, link)

    def close(self) -> None:
        if self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


def ended_words(code: int | None) -> str:
    """keepalived's words for how a script ended: "exited with status 1", "due to signal 9";
    empty when it did not finish."""
    if code is None:
        return ""
    if code < 0:
        return f"due to signal {-code}"
    return f"exited with status {code}"


class ScriptTracker(Listeners):
    """Runs one vrrp_script every `interval`; `rise` successes / `fall` failures flip its state.
    Keeps how long its runs took, how many timed out, and when its state last changed (Unix
    time) for the status."""

    def __init__(self, script: VrrpScript, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.script = script
        self.loop = loop
        self.ok = not script.init_fail
        self._streak = 0
        self._trouble = ""  # why the last run did not finish (timeout, refused...)
        self._ended = ""  # how the last run that finished ended, in keepalived's words
        self.durations = Durations()
        self.timeouts = 0
        self.changed = time.time()
        self._task: asyncio.Task | None = None

    @property
    def state(self) -> bool:
        return self.ok

    def status(self) -> dict:
        return {
            "ok": self.ok,
            "last_change": self.changed,
            "timeouts": self.timeouts,
            "durations": self.durations.status(),
        }

    def start(self) -> None:
        if self._task is None:
            self._task = self.loop.create_task(self._run())

    async def stop(self) -> None:
        await cancelled(self._task)
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
        clock = asyncio.get_running_loop()
        started = clock.time()
        outcome = await run_script(split_command(self.script.script), self.script.run_as, timeout)
        self.durations.observe(clock.time() - started)
        self.timeouts += outcome.timed_out
        trouble = outcome.error if outcome.code is None or outcome.code < 0 else ""
        if trouble and trouble != self._trouble:  # once, not every interval
            log.warning("VRRP_Script(%s) %s", self.script.name, trouble)
        self._trouble = trouble
        self._ended = ended_words(outcome.code)
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
        self.changed = time.time()
        if success:
            log.info("VRRP_Script(%s) succeeded", self.script.name)
        elif self._ended:
            log.info("VRRP_Script(%s) failed (%s)", self.script.name, self._ended)
        else:
            log.info("VRRP_Script(%s) failed", self.script.name)
        self.tell(self.script.name, success)
