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
    announcer = addresses.Announcer()
    first = announcer._socket("eth0")
    assert announcer._socket("eth0") is first
    index["eth0"] = 7  # deleted and re-created: the old socket is bound to index 2
    second = announcer._socket("eth0")
    assert second is not first and first.closed
    assert second.bound == ("eth0", 0)
    announcer.close()
    assert second.closed
