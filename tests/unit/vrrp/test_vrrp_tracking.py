"""Link events parsing and the vrrp_script rise/fall counting."""

from __future__ import annotations

import asyncio
import errno
import logging
import struct
import time

import pytest

from lvsagent.config.model import VrrpScript
from lvsagent.vrrp import tracking

UP = tracking.IFF_UP | tracking.IFF_RUNNING


def link_message(kind: int, ifindex: int, flags: int, ifname: str | None = "eth0") -> bytes:
    body = tracking.IFINFOMSG.pack(0, 1, ifindex, flags, 0xFFFFFFFF)
    attributes = struct.pack("=HH4s", 8, 4, b"\0\0\5\xdc")  # IFLA_MTU first
    if ifname is not None:
        name = ifname.encode() + b"\0"
        padded = name + b"\0" * (-len(name) % 4)
        attributes += struct.pack("=HH", 4 + len(name), tracking.IFLA_IFNAME) + padded
    length = tracking.NLMSG_HEADER.size + len(body) + len(attributes)
    return tracking.NLMSG_HEADER.pack(length, kind, 0, 0, 0) + body + attributes


def test_link_events_up_down_deleted_with_their_names():
    data = (
        link_message(tracking.RTM_NEWLINK, 3, UP, "eth0")
        + link_message(tracking.RTM_NEWLINK, 4, tracking.IFF_UP, "bond0.12")  # no carrier
        + link_message(tracking.RTM_DELLINK, 5, UP, "veth1")
        + link_message(20, 6, UP)  # RTM_NEWADDR: not a link event
        + link_message(tracking.RTM_NEWLINK, 7, UP, None)
    )
    assert tracking.parse_link_events(data) == [
        tracking.LinkEvent(3, "eth0", up=True, deleted=False),
        tracking.LinkEvent(4, "bond0.12", up=False, deleted=False),
        tracking.LinkEvent(5, "veth1", up=False, deleted=True),
        tracking.LinkEvent(7, None, up=True, deleted=False),
    ]


def test_link_events_survive_garbage():
    assert tracking.parse_link_events(b"\x00" * 7) == []
    assert tracking.parse_link_events(b"\x00" * 40) == []
    truncated = link_message(tracking.RTM_NEWLINK, 3, UP, "eth0")[:-6]
    assert tracking.parse_link_events(truncated) == [tracking.LinkEvent(3, None, True, False)]


class FakeNetlink:
    """The monitor socket: hands out queued datagrams, or an error such as ENOBUFS."""

    def __init__(self):
        self.queue = []

    def fileno(self):
        return -1

    def recv(self, size):
        if not self.queue:
            raise BlockingIOError
        item = self.queue.pop(0)
        if isinstance(item, OSError):
            raise item
        return item

    def close(self):
        pass


class FakeLoop:
    def add_reader(self, fd, callback):
        pass

    def remove_reader(self, fd):
        pass


def monitor_with(kernel: dict):
    """A LinkMonitor over a fake socket; `kernel` is what a fresh read of a link answers."""
    netlink = FakeNetlink()
    monitor = tracking.LinkMonitor(
        FakeLoop(),
        probe=lambda ifname: kernel.get(ifname, tracking.GONE),
        open_socket=lambda: netlink,
    )
    seen = []
    return monitor, netlink, seen, lambda ifname, link: seen.append((ifname, link))


def deliver(monitor, netlink, *datagrams):
    netlink.queue.extend(datagrams)
    for _datagram in datagrams:
        monitor._readable()


def test_interface_deleted_and_recreated_is_followed_by_name(caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")
    monitor, netlink, seen, listener = monitor_with({"eth0": tracking.Link(2, True)})
    assert monitor.watch("eth0", listener) == tracking.Link(2, True)
    deliver(
        monitor,
        netlink,
        link_message(tracking.RTM_NEWLINK, 2, 0, "eth0"),
        link_message(tracking.RTM_DELLINK, 2, 0, "eth0"),
        link_message(tracking.RTM_NEWLINK, 9, 0, "other"),  # not watched
        link_message(tracking.RTM_NEWLINK, 7, 0, "eth0"),  # the same name, a new index
        link_message(tracking.RTM_NEWLINK, 7, UP, "eth0"),
    )
    assert seen == [
        ("eth0", tracking.Link(2, False)),
        ("eth0", tracking.GONE),
        ("eth0", tracking.Link(7, False)),
        ("eth0", tracking.Link(7, True)),
    ]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Netlink reports eth0 down",
        "Interface eth0 deleted",
        "Interface eth0 added",
        "Netlink reports eth0 up",
    ]


def test_interface_renamed_away_is_gone_for_its_old_name():
    monitor, netlink, seen, listener = monitor_with({"eth0": tracking.Link(2, True)})
    monitor.watch("eth0", listener)
    deliver(monitor, netlink, link_message(tracking.RTM_NEWLINK, 2, UP, "old-eth0"))
    assert seen == [("eth0", tracking.GONE)]


def test_overrun_resyncs_every_watched_link_and_logs_once(caplog):
    caplog.set_level(logging.DEBUG, logger="lvsagent")
    kernel = {"eth0": tracking.Link(2, True), "eth1": tracking.Link(3, True)}
    monitor, netlink, seen, listener = monitor_with(kernel)
    monitor.watch("eth0", listener)
    monitor.watch("eth1", listener)
    # while the socket overran, eth0 was deleted and re-created and eth1 lost its carrier
    kernel.update({"eth0": tracking.Link(8, True), "eth1": tracking.Link(3, False)})
    overrun = OSError(errno.ENOBUFS, "No buffer space available")
    deliver(monitor, netlink, overrun)
    assert seen == [("eth0", tracking.Link(8, True)), ("eth1", tracking.Link(3, False))]
    deliver(monitor, netlink, overrun)  # nothing changed since: nothing reported
    assert len(seen) == 2 and monitor.overruns == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "Netlink: Receive buffer overrun on monitor socket - (No buffer space available)"
    ]


def test_script_needs_fall_failures_then_rise_successes():
    script = VrrpScript(name="chk", script="true", rise=2, fall=3)
    tracker = tracking.ScriptTracker(script, loop=None)
    changes = []
    tracker.subscribe(lambda name, ok: changes.append((name, ok)))
    for result in (False, False, True, False, False):
        tracker.record(result)
    assert tracker.ok and changes == []
    tracker.record(False)
    assert not tracker.ok and changes == [("chk", False)]
    tracker.record(True)
    assert not tracker.ok
    tracker.record(True)
    assert tracker.ok and changes[-1] == ("chk", True)


def test_init_fail_starts_failed():
    tracker = tracking.ScriptTracker(VrrpScript(name="chk", init_fail=True), loop=None)
    assert tracker.ok is False


def test_a_script_that_keeps_timing_out_is_logged_once(caplog):
    script = VrrpScript(name="chk", script="/bin/sleep 5", timeout=0.2)
    tracker = tracking.ScriptTracker(script, loop=None)

    async def three_runs():
        return [await tracker.run_once() for _run in range(3)]

    with caplog.at_level(logging.WARNING, "lvsagent.vrrp"):
        assert asyncio.run(three_runs()) == [False, False, False]
    assert caplog.messages == ["VRRP_Script(chk) timed out after 0.2s"]
    status = tracker.status()
    assert status["timeouts"] == 3 and status["durations"]["count"] == 3
    assert 0.6 <= status["durations"]["sum"] < 3


def test_a_script_status_has_its_durations_and_when_its_state_last_changed():
    script = VrrpScript(name="chk", script="/bin/sh -c 'sleep 0.05; exit 1'", fall=1)
    tracker = tracking.ScriptTracker(script, loop=None)
    started = tracker.status()["last_change"]
    assert time.time() - 5 < started <= time.time()

    async def runs():
        return [await tracker.run_once() for _run in range(2)]

    assert asyncio.run(runs()) == [False, False]
    tracker.record(False)
    status = tracker.status()
    assert status["ok"] is False and status["timeouts"] == 0
    assert status["last_change"] >= started + 0.1  # the flip, after the two runs
    durations = status["durations"]
    buckets = dict(map(tuple, durations["buckets"]))
    assert durations["count"] == 2 and buckets[0.025] == 0  # the 50 ms sleep is counted


@pytest.mark.parametrize(
    ("command", "logged"),
    [
        ("/bin/sh -c 'exit 3'", "VRRP_Script(chk) failed (exited with status 3)"),
        ("/bin/sh -c 'kill -9 $$'", "VRRP_Script(chk) failed (due to signal 9)"),
    ],
)
def test_a_failed_script_is_logged_as_keepalived_says_how_it_ended(caplog, command, logged):
    tracker = tracking.ScriptTracker(VrrpScript(name="chk", script=command, fall=1), loop=None)

    async def run():
        tracker.record(await tracker.run_once())

    with caplog.at_level(logging.INFO, "lvsagent.vrrp"):
        asyncio.run(run())
    assert caplog.messages[-1] == logged
