"""Link events parsing and the vrrp_script rise/fall counting."""

from __future__ import annotations

import asyncio
import logging
import struct

from lvsagent.config.model import VrrpScript
from lvsagent.vrrp import tracking


def link_message(kind: int, ifindex: int, flags: int) -> bytes:
    body = tracking.IFINFOMSG.pack(0, 1, ifindex, flags, 0xFFFFFFFF)
    attribute = struct.pack("=HH4s", 8, 3, b"eth0")  # IFLA_IFNAME, ignored
    length = tracking.NLMSG_HEADER.size + len(body) + len(attribute)
    return tracking.NLMSG_HEADER.pack(length, kind, 0, 0, 0) + body + attribute


def test_link_events_up_down_and_deleted():
    up = tracking.IFF_UP | tracking.IFF_RUNNING
    data = (
        link_message(tracking.RTM_NEWLINK, 3, up)
        + link_message(tracking.RTM_NEWLINK, 4, tracking.IFF_UP)  # no carrier
        + link_message(tracking.RTM_DELLINK, 5, up)
        + link_message(20, 6, up)  # RTM_NEWADDR: not a link event
    )
    assert tracking.parse_link_events(data) == [(3, True), (4, False), (5, False)]


def test_link_events_survive_garbage():
    assert tracking.parse_link_events(b"\x00" * 7) == []
    assert tracking.parse_link_events(b"\x00" * 40) == []


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
        return [await tracker.run_once() for _ in range(3)]

    with caplog.at_level(logging.WARNING, "lvsagent.vrrp"):
        assert asyncio.run(three_runs()) == [False, False, False]
    assert caplog.messages == ["VRRP_Script(chk) timed out after 0.2s"]
