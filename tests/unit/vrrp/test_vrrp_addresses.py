"""The gratuitous ARP sockets follow an interface that was deleted and re-created; the frames
wait for their slots (vrrp_garp_interval, vrrp_gna_interval, garp_group)."""

from __future__ import annotations

import ipaddress
import socket

from lvsagent.config import loads
from lvsagent.vrrp import addresses


class FakePacketSocket:
    def __init__(self, family, kind):
        self.bound = None
        self.closed = False

    def bind(self, address):
        self.bound = address

    def close(self):
        self.closed = True


def test_announcer_rebinds_when_the_interface_index_changed(monkeypatch):
    index = {"eth0": 2}
    monkeypatch.setattr(socket, "if_nametoindex", lambda name: index[name])
    monkeypatch.setattr(socket, "socket", FakePacketSocket)
    announcer = addresses.Announcer(SteppedLoop())
    first = announcer._socket("eth0")
    assert announcer._socket("eth0") is first
    index["eth0"] = 7  # deleted and re-created: the old socket is bound to index 2
    second = announcer._socket("eth0")
    assert second is not first and first.closed
    assert second.bound == ("eth0", 0)
    announcer.close()
    assert second.closed


class Timer:
    def __init__(self, when, callback, args):
        self.at, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self):
        self.cancelled = True


class SteppedLoop:
    """The loop calls the Announcer makes, on a clock the test moves."""

    def __init__(self):
        self.now = 100.0
        self.timers = []

    def time(self):
        return self.now

    def call_at(self, when, callback, *args):
        timer = Timer(when, callback, args)
        self.timers.append(timer)
        return timer

    def run_until(self, end):
        while True:
            due = [t for t in self.timers if not t.cancelled and t.at <= end]
            if not due:
                self.now = end
                return
            timer = min(due, key=lambda t: t.at)
            self.timers.remove(timer)
            self.now = max(self.now, timer.at)  # a timer runs late when the test moved past it
            timer.callback(*timer.args)


class RecordingAnnouncer(addresses.Announcer):
    def __init__(self, loop):
        super().__init__(loop)
        self.sent = []

    def announce(self, ifname, address):
        self.sent.append((ifname, address.version, round(self._loop.time() - 100.0, 6)))
        return True


def paced(text):
    loop = SteppedLoop()
    announcer = RecordingAnnouncer(loop)
    announcer.pace(loads(text))
    return loop, announcer


INSTANCE = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 5\n}\n"
V4, V4B, V4C = (ipaddress.ip_address(f"192.0.2.{host}") for host in (1, 2, 3))
V6, V6B = ipaddress.ip_address("fd00::1"), ipaddress.ip_address("fd00::2")


def queue(announcer, *frames, owner="VI_1"):
    counted = []
    for ifname, address in frames:
        announcer.queue(owner, ifname, address, lambda: counted.append(1))
    return counted


def test_frames_of_one_kind_on_one_interface_go_out_their_interval_after_the_last_one():
    loop, announcer = paced(INSTANCE)
    counted = queue(announcer, ("eth0", V4), ("eth0", V4))
    assert announcer.sent == [("eth0", 4, 0.0), ("eth0", 4, 0.0)]  # keepalived's default
    assert counted == [1, 1]
    loop, announcer = paced(
        "global_defs {\n  vrrp_garp_interval 0.5\n  vrrp_gna_interval 2\n}\n" + INSTANCE
    )
    queue(announcer, ("eth0", V4), ("eth0", V4B), ("eth0", V4C), ("eth0", V6), ("eth0", V6B))
    queue(announcer, ("eth1", V4))
    loop.now = 100.8  # the timer due at 100.5 runs late: the next frame waits 0.5 s after it
    loop.run_until(110.0)
    assert announcer.sent == [
        ("eth0", 4, 0.0),
        ("eth0", 6, 0.0),
        ("eth1", 4, 0.0),  # another interface: its own turn
        ("eth0", 4, 0.8),
        ("eth0", 4, 1.3),
        ("eth0", 6, 2.0),
    ]
    queue(announcer, ("eth0", V4))
    assert announcer.sent[-1] == ("eth0", 4, 10.0)  # the last one is old enough: at once


def test_rounds_finding_an_address_still_waiting_collapse_into_its_one_frame():
    loop, announcer = paced("global_defs {\n  vrrp_garp_interval 0.5\n}\n" + INSTANCE)
    for _round in range(5):
        queue(announcer, ("eth0", V4), ("eth0", V4B))
    loop.run_until(110.0)
    assert [(ifname, at) for ifname, _version, at in announcer.sent] == [
        ("eth0", 0.0),  # V4 at once
        ("eth0", 0.5),  # V4B, waiting since round 1
        ("eth0", 1.0),  # V4 of round 2; rounds 3 to 5 found both waiting
    ]


def test_the_interfaces_of_a_garp_group_share_its_turns_and_the_others_keep_the_global_ones():
    loop, announcer = paced(
        "global_defs {\n  vrrp_garp_interval 0.1\n  vrrp_gna_interval 0.1\n}\n"
        "garp_group {\n  garp_interval 0.5\n  interfaces {\n    eth0\n    eth1\n  }\n}\n" + INSTANCE
    )
    queue(announcer, ("eth0", V4), ("eth1", V4), ("eth0", V4B), ("eth1", V4B))
    queue(announcer, ("eth0", V6), ("eth0", V6B), ("eth2", V4), ("eth2", V4B))
    loop.run_until(102.0)
    assert [f for f in announcer.sent if f[0] != "eth2" and f[1] == 4] == [
        ("eth0", 4, 0.0),
        ("eth1", 4, 0.5),
        ("eth0", 4, 1.0),
        ("eth1", 4, 1.5),
    ]  # one budget across the switch's interfaces
    assert [f for f in announcer.sent if f[1] == 6] == [("eth0", 6, 0.0), ("eth0", 6, 0.0)]
    assert [f for f in announcer.sent if f[0] == "eth2"] == [("eth2", 4, 0.0), ("eth2", 4, 0.1)]
    announcer.pace(loads(INSTANCE))  # a reload without the group and the intervals
    queue(announcer, ("eth1", V4))
    assert announcer.sent[-1] == ("eth1", 4, 2.0)


def test_an_owner_leaving_master_takes_back_its_waiting_frames():
    loop, announcer = paced("global_defs {\n  vrrp_garp_interval 1\n}\n" + INSTANCE)
    queue(announcer, ("eth0", V4), ("eth0", V4B), owner="VI_1")
    kept = queue(announcer, ("eth0", V4C), owner="VI_2")
    announcer.forget("VI_1")
    loop.run_until(105.0)
    assert announcer.sent == [("eth0", 4, 0.0), ("eth0", 4, 1.0)]
    assert kept == [1]
