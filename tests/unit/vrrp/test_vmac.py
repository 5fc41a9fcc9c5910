"""VmacLinks' bookkeeping with rtnetlink faked and /proc/sys a temporary tree: what keepalived
sets for its VMACs, shared by the instances of one base interface, is put back by the last."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from lvsagent.arpsuppress import ProcSys
from lvsagent.vrrp import vmac as vmac_module
from lvsagent.vrrp.addresses import AddressManager
from lvsagent.vrrp.vmac import Vmac, VmacLinks, virtual_mac

INDEXES = {"eth0": 2, "eth1": 3, "vrrp.51": 10, "vrrp.52": 11, "vrrp.53": 12}


class FakeRtnl:
    """Links by name; `add` and `del` as the kernel would, nothing else."""

    def __init__(self, existing=()):
        self.links = dict(existing)  # name -> attributes
        self.calls = []

    async def link_lookup(self, ifname):
        return [INDEXES[ifname]] if ifname in self.links else []

    async def link(self, command, **options):
        self.calls.append((command, options))
        if command == "add":
            self.links[options["ifname"]] = options
        elif command == "del":
            name = next(n for n in self.links if INDEXES[n] == options["index"])
            del self.links[name]

    async def addr(self, command, **options):
        self.calls.append((f"addr {command}", options))

    def close(self):
        pass


@pytest.fixture
def host(tmp_path, monkeypatch):
    """/proc/sys/net/ipv4/conf with all, default, eth0, eth1 and whatever VMAC is made."""
    values = {"all": (2, 0, 0), "default": (1, 0, 0), "eth0": (0, 0, 0), "eth1": (2, 0, 1)}
    for name, (rp_filter, arp_ignore, arp_filter) in values.items():
        conf = tmp_path / "net/ipv4/conf" / name
        conf.mkdir(parents=True)
        for key, value in (("rp_filter", rp_filter), ("arp_ignore", arp_ignore),
                           ("arp_filter", arp_filter)):  # fmt: skip
            (conf / key).write_text(f"{value}\n")
    monkeypatch.setattr(vmac_module.socket, "if_nametoindex", INDEXES.__getitem__)
    monkeypatch.setattr(
        vmac_module.socket, "if_nameindex", lambda: [(2, "eth0"), (3, "eth1"), (1, "lo")]
    )
    rtnl = FakeRtnl({"eth0": {}, "eth1": {}})
    addresses = AddressManager()
    addresses._ipr = rtnl
    links = VmacLinks(addresses, ProcSys(str(tmp_path)))
    return links, rtnl, tmp_path


def sysctl(root, name: str, key: str) -> int:
    path = root / "net" / f"ipv{6 if key in ('disable_ipv6', 'addr_gen_mode') else 4}" / "conf"
    return int((path / name / key).read_text())


def test_the_virtual_mac_is_the_rfcs():
    assert virtual_mac(51, 4) == "00:00:5e:00:01:33"
    assert virtual_mac(255, 6) == "00:00:5e:00:02:ff"


def test_two_vmacs_on_one_base_set_it_once_and_the_last_puts_it_back(host):
    links, rtnl, root = host
    (root / "net/ipv6/conf/vrrp.51").mkdir(parents=True)
    (root / "net/ipv6/conf/vrrp.52").mkdir(parents=True)
    for name in ("vrrp.51", "vrrp.52"):
        (root / "net/ipv4/conf" / name).mkdir(parents=True)
    first = Vmac("vrrp.51", "eth0", 51, 4, "VI_1")
    second = Vmac("vrrp.52", "eth0", 52, 4, "VI_2")

    async def scenario():
        assert await links.create(first) == 10
        assert await links.create(second) == 11
        added = [options for command, options in rtnl.calls if command == "add"]
        assert [(o["ifname"], o["kind"], o["macvlan_mode"], o["link"], o["address"])
                for o in added] == [
            ("vrrp.51", "macvlan", "private", 2, "00:00:5e:00:01:33"),
            ("vrrp.52", "macvlan", "private", 2, "00:00:5e:00:01:34"),
        ]  # fmt: skip
        keys = ("arp_ignore", "accept_local", "rp_filter", "promote_secondaries")
        keys += ("disable_ipv6", "addr_gen_mode")
        assert [sysctl(root, "vrrp.51", key) for key in keys] == [1, 1, 0, 1, 1, 1]
        assert (sysctl(root, "eth0", "arp_ignore"), sysctl(root, "eth0", "arp_filter")) == (1, 1)
        # all.rp_filter 0, the others raised to its old 2 first: only the VMACs lose the filter
        assert [sysctl(root, n, "rp_filter") for n in ("all", "default", "eth0", "eth1")] == [
            0, 2, 2, 2,
        ]  # fmt: skip
        (root / "net/ipv4/conf/eth1/rp_filter").write_text("1\n")  # changed by the operator
        await links.remove(first)
        assert sysctl(root, "eth0", "arp_ignore") == 1  # vrrp.52 still needs it
        assert sysctl(root, "all", "rp_filter") == 0
        await links.remove(second)
        assert (sysctl(root, "eth0", "arp_ignore"), sysctl(root, "eth0", "arp_filter")) == (0, 0)
        rp_filters = [sysctl(root, n, "rp_filter") for n in ("all", "default", "eth0", "eth1")]
        assert rp_filters == [2, 1, 0, 1]  # eth1 as the operator left it
        assert set(rtnl.links) == {"eth0", "eth1"}

    asyncio.run(scenario())


def test_a_macvlan_of_the_right_kind_is_taken_over_and_another_replaced(host):
    links, rtnl, root = host
    for family in (4, 6):
        (root / f"net/ipv{family}/conf/vrrp.51").mkdir(parents=True, exist_ok=True)
    rtnl.links["vrrp.51"] = {}
    kept = {"IFLA_LINK": 2, "IFLA_ADDRESS": "00:00:5e:00:01:33", "mode": "private"}

    async def get(command, **options):
        if command != "get":
            return await FakeRtnl.link(rtnl, command, **options)
        rtnl.calls.append((command, options))
        return [FakeLink(kept)]

    rtnl.link = get

    async def scenario():
        await links.create(Vmac("vrrp.51", "eth0", 51, 4, "VI_1"))
        assert [call[0] for call in rtnl.calls] == ["get", "set"]  # taken over
        kept["IFLA_ADDRESS"] = "02:00:00:00:00:01"  # not ours: replaced
        rtnl.calls.clear()
        await links.create(Vmac("vrrp.51", "eth0", 51, 4, "VI_1"))
        assert [call[0] for call in rtnl.calls] == ["get", "del", "add", "set"]
        kept["kind"] = "veth"
        rtnl.calls.clear()
        with pytest.raises(RuntimeError, match="already exists as a non macvlan interface"):
            await links.create(Vmac("vrrp.51", "eth0", 51, 4, "VI_1"))

    asyncio.run(scenario())


def test_ipv6_vmac_gets_the_base_link_local_and_no_ipv4_settings(host):
    links, rtnl, root = host
    (root / "net/ipv6/conf/vrrp.53").mkdir(parents=True)
    address = ipaddress.ip_address("fe80::1")

    async def scenario():
        await links.create(Vmac("vrrp.53", "eth1", 53, 6, "VI_6", link_local=address))
        added = [o for command, o in rtnl.calls if command == "addr add"]
        assert [(o["address"], o["prefixlen"]) for o in added] == [("fe80::1", 64)]
        assert sysctl(root, "all", "rp_filter") == 2  # untouched for IPv6
        assert sysctl(root, "vrrp.53", "addr_gen_mode") == 1
        assert rtnl.links["vrrp.53"]["address"] == "00:00:5e:00:02:35"

    asyncio.run(scenario())


class FakeLink:
    def __init__(self, attributes):
        self.attributes = attributes

    def get(self, name):
        return self.attributes.get(name)

    def get_nested(self, *path):
        if path[-1] == "IFLA_INFO_KIND":
            return self.attributes.get("kind", "macvlan")
        return self.attributes["mode"]
