"""NftPlane lists the table only when the ruleset generation moved under it: its own
transaction (the generation moved by one) is known without listing, anyone else's commit makes
the next pass list; and the generation is read from the kernel's nfnetlink reply."""

from __future__ import annotations

import asyncio
import struct

import pytest

from lvsagent.ipvs import Destination, Service, ServiceKey
from lvsagent.nft import ruleset
from lvsagent.nft.client import NftError, read_generation
from lvsagent.nft.plane import NftPlane

WEB = ServiceKey.for_address("10.0.0.100", 80)


class FakeClient:
    """A table in memory (what `applied` makes of each transaction) and its generation."""

    def __init__(self):
        self.live = ruleset.LiveTable()
        self.generation_now = 7
        self.listings = 0

    async def generation(self):
        return self.generation_now

    async def list_table(self, family, name):
        self.listings += 1
        if not self.live.present:
            return None
        rules = [{"chain": n, "expr": r["expr"], "comment": r.get("comment")}
                 for n, chain in self.live.chains.items() for r in chain]  # fmt: skip
        elements = [
            [{"concat": list(m)}, {"goto": {"target": t}}] for m, t in self.live.elements.items()
        ]
        items = [{"table": {}}] + [{"chain": {"name": hook}} for hook in self.live.dispatch]
        items += [{"rule": {"chain": hook, "expr": e}}
                  for hook, exprs in self.live.dispatch.items() for e in exprs]  # fmt: skip
        items += [{"map": {"name": n, "elem": elements if n == "services4" else []}}
                  for n in self.live.services_maps]  # fmt: skip
        items += [{"chain": {"name": n}} for n in self.live.chains]
        items += [{"rule": rule} for rule in rules]
        return {"nftables": items}

    async def apply(self, commands):
        self.live = ruleset.applied(self.live, commands)
        self.generation_now += 1


def web(*weights):
    servers = [Destination(f"10.0.1.{2 + i}", 80, "nat", w) for i, w in enumerate(weights)]
    return {WEB: (Service(WEB, "wrr"), servers)}


def test_own_transactions_are_known_and_foreign_commits_are_listed():
    client = FakeClient()
    plane = NftPlane(client)

    async def test():
        changes, failed = await plane.sync(web(1, 1), (), True)
        assert [c.action for c in changes] == ["add_service"] and not failed
        assert client.listings == 1
        changes, _failed = await plane.sync(web(1), (), False)  # a health change: no listing
        assert [c.action for c in changes] == ["edit_service"] and client.listings == 1
        assert (await plane.sync(web(1), (), True))[0] == [] and client.listings == 1
        client.live.elements.clear()  # a hand edit: someone else's commit
        client.generation_now += 1
        changes, _failed = await plane.sync(web(1), (), True)
        assert [c.action for c in changes] == ["edit_service"] and client.listings == 2
        assert client.live.elements == {("10.0.0.100", "tcp", 80): "vs-tcp-10.0.0.100-80"}

    asyncio.run(test())


def test_a_commit_racing_ours_makes_the_next_pass_list():
    client = FakeClient()
    plane = NftPlane(client)
    own_apply = client.apply

    async def apply_and_race(commands):
        await own_apply(commands)
        client.generation_now += 1  # someone committed right after us

    async def test():
        await plane.sync(web(1), (), True)
        client.apply = apply_and_race
        await plane.sync(web(2), (), False)
        listed = client.listings
        await plane.sync(web(2), (), False)
        assert client.listings == listed + 1

    asyncio.run(test())


class FakeSocket:
    def __init__(self, reply: bytes):
        self.reply, self.sent = reply, b""

    def send(self, data):
        self.sent = data

    def recv(self, size):
        return self.reply


def test_the_generation_comes_from_the_nfnetlink_reply():
    attribute = struct.pack("=HH", 8, 1) + struct.pack(">I", 4242)
    body = struct.pack("=BBH", 0, 0, 0) + struct.pack("=HH", 8, 2) + b"\0\0\0\1" + attribute
    reply = struct.pack("=IHHII", 16 + len(body), (10 << 8) | 15, 0, 0, 0) + body
    sock = FakeSocket(reply)
    assert read_generation(sock) == 4242
    assert struct.unpack_from("=IHH", sock.sent) == (20, (10 << 8) | 16, 1)


def test_a_netlink_error_is_an_nft_error():
    error = struct.pack("=IHHII", 36, 2, 0, 0, 0) + struct.pack("=i", -1) + bytes(16)
    with pytest.raises(NftError, match="errno 1"):
        read_generation(FakeSocket(error))
