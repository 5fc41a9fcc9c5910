"""The gratuitous ARP sockets follow an interface that was deleted and re-created."""

from __future__ import annotations

import socket

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
    announcer = addresses.Announcer(lambda: 0.0)
    first = announcer._socket("eth0")
    assert announcer._socket("eth0") is first
    index["eth0"] = 7  # deleted and re-created: the old socket is bound to index 2
    second = announcer._socket("eth0")
    assert second is not first and first.closed
    assert second.bound == ("eth0", 0)
    announcer.close()
    assert second.closed


def test_frames_of_one_kind_on_one_interface_get_slots_their_interval_apart():
    now = [100.0]
    announcer = addresses.Announcer(lambda: now[0])
    assert announcer.reserve("eth0", 4, 0.0) == 0.0  # not paced: keepalived's default
    assert [announcer.reserve("eth0", 4, 0.5) for _attempt in range(3)] == [0.0, 0.5, 1.0]
    assert [announcer.reserve("eth0", 6, 2.0) for _attempt in range(2)] == [0.0, 2.0]
    assert announcer.reserve("eth1", 4, 0.5) == 0.0
    now[0] = 100.75
    assert announcer.reserve("eth0", 4, 0.5) == 0.75  # after the slots already handed out
    now[0] = 110.0
    assert announcer.reserve("eth0", 4, 0.5) == 0.0
