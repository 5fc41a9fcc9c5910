"""NftPlane lists the table only when the ruleset generation moved under it: its own
transaction (the generation moved by one) is known without listing, anyone else's commit makes
the next pass list; and the generation is read from the kernel's nfnetlink reply."""

from __future__ import annotations

import asyncio
import struct
import threading

import pytest

from lvsagent.ipvs import Destination, Service, ServiceKey
from lvsagent.nft import ruleset
from lvsagent.nft.client import NftError, read_generation
from lvsagent.nft.plane import NftPlane

WEB = ServiceKey.for_address("10.0.0.100", 80)


class FakeClient:
    """The tables in memory (what `applied` makes of each transaction), their generation, and
    the kernel's routes (every real server on eth1)."""

    def __init__(self):
        self.lives = {f: ruleset.LiveTable(family=f) for f in ruleset.TABLE_FAMILIES.values()}
        self.generation_now = 7
        self.listings = 0  # passes that listed the tables
        self.routed = []

    @property
    def live(self):
        return self.lives[ruleset.FAMILY]

    async def generation(self):
        return self.generation_now

    async def compute(self, function, *args):
        """On a thread of its own, as the real client's worker."""
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    async def devices(self, addresses):
        self.routed += addresses
        return {address: "eth1" for address in addresses}

    async def list_table(self, family, name):
        self.listings += family == ruleset.FAMILY
        live = self.lives[family]
        if not live.present:
            return None
        rules = [{"chain": n, "expr": r["expr"], "comment": r.get("comment")}
                 for n, chain in live.chains.items() for r in chain]  # fmt: skip
        elements = [
            [{"concat": list(m)}, {"goto": {"target": t}}] for m, t in live.elements.items()
        ]
        items = [{"table": {}}] + [{"chain": {"name": n, "hook": "?"}} for n in live.dispatch]
        items += [{"rule": {"chain": n, "expr": e}}
                  for n, exprs in live.dispatch.items() for e in exprs]  # fmt: skip
        for name in live.services_maps:
            ipv6 = name == "services6"
            elem = [e for e in elements if (":" in e[0]["concat"][0]) == ipv6]
            items.append({"map": {"name": name, "elem": elem}})
        items += [{"chain": {"name": n}} for n in live.chains]
        items += [{"rule": rule} for rule in rules]
        return {"nftables": items}

    async def apply(self, commands):
        self.lives = {f: ruleset.applied(live, commands) for f, live in self.lives.items()}
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


def test_the_plan_is_made_off_the_event_loop(monkeypatch):
    client = FakeClient()
    plane = NftPlane(client)
    planned_on = []
    plan = ruleset.plan

    def recorded(*args, **kwargs):
        planned_on.append(threading.current_thread())
        return plan(*args, **kwargs)

    monkeypatch.setattr(ruleset, "plan", recorded)
    asyncio.run(plane.sync(web(1, 1), (), True))
    assert planned_on and threading.main_thread() not in planned_on


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


def dr(*addresses):
    servers = [Destination(address, 80, "dr", 1) for address in addresses]
    return {WEB: (Service(WEB, "sh"), servers)}


def test_dr_services_go_to_the_netdev_table_through_their_routed_device():
    client = FakeClient()
    plane = NftPlane(client)

    async def test():
        changes, failed = await plane.sync(dr("10.0.1.2", "10.0.1.3"), (), True)
        assert [c.action for c in changes] == ["add_service"] and not failed
        netdev = client.lives[ruleset.DR_FAMILY]
        assert "in-eth1" in netdev.dispatch and "vs-tcp-10.0.0.100-80" in netdev.chains
        assert not client.live.chains  # nothing in the NAT table
        await plane.sync(dr("10.0.1.2"), (), False)  # a health change: routes are known
        assert client.routed == ["10.0.1.2", "10.0.1.3"]
        changes, _failed = await plane.sync(dr(), (), False)  # none left: it stays in DR
        assert [c.action for c in changes] == ["edit_service"] and not client.live.chains
        await plane.sync(web(1), (), True)  # NAT now: out of the DR table, into the NAT one
        assert "vs-tcp-10.0.0.100-80" in client.live.chains
        assert not client.lives[ruleset.DR_FAMILY].chains
        assert client.routed == ["10.0.1.2", "10.0.1.3"]
        await plane.close()
        assert not any(live.present for live in client.lives.values())

    asyncio.run(test())


def test_a_dr_service_without_one_device_fails_alone():
    client = FakeClient()
    routes = {"10.0.1.2": "eth1", "10.0.1.3": "eth2", "10.0.2.2": "eth1", "10.0.9.9": None}

    async def devices(addresses):
        return {address: routes[address] for address in addresses}

    client.devices = devices
    plane = NftPlane(client)
    other = ServiceKey.for_address("10.0.0.101", 80)

    def both(*addresses) -> dict:
        desired = dr(*addresses)
        desired[other] = (Service(other, "sh"), [Destination("10.0.2.2", 80, "dr", 1)])
        return desired

    async def test():
        await plane.sync(both("10.0.1.2"), (), True)
        changes, failed = await plane.sync(both("10.0.1.2", "10.0.1.3"), (), True)
        assert changes == [] and [(c.action, c.key) for c in failed] == [("edit_service", WEB)]
        netdev = client.lives[ruleset.DR_FAMILY]
        assert "vs-tcp-10.0.0.100-80" in netdev.chains  # kept as it was
        assert ruleset.read(netdev, {WEB})[WEB][1][0].address == "10.0.1.2"
        changes, failed = await plane.sync(both("10.0.9.9"), (), True)  # no route
        assert [c.key for c in failed] == [WEB]
        netdev = client.lives[ruleset.DR_FAMILY]
        assert set(ruleset.read(netdev, {WEB, other})) == {WEB, other}  # both stay

    asyncio.run(test())
