"""The nftables batches vrrp/firewall.py sends: keepalived 2.2.7's table (as `nft list
ruleset` shows it under Debian's keepalived), sets that follow the masters' VIPs, tables gone
at stop. nft itself is faked here; tests/integration/netns/test_vrrp_firewall.py runs it."""

from __future__ import annotations

import asyncio
import ipaddress

from lvsagent.config.model import GlobalDefs, VirtualAddress, VrrpInstance
from lvsagent.vrrp import firewall
from lvsagent.vrrp.firewall import (
    Firewall,
    Settings,
    elements_script,
    link_local_script,
    table_script,
)


def vip(text: str) -> VirtualAddress:
    return VirtualAddress(address=ipaddress.ip_interface(text))


def test_ipv4_table_drops_to_and_from_the_vips_at_filter_minus_1():
    script = table_script(Settings(GlobalDefs(), []), 4)
    assert script.startswith("add table ip keepalived\ndelete table ip keepalived\n")
    assert "chain in { type filter hook input priority filter - 1; policy accept;" in script
    assert "ip daddr @vips drop;" in script and "ip saddr @vips drop;" in script
    assert "counter" not in script


def test_priority_counters_and_name():
    settings = Settings(
        GlobalDefs(nftables="mine", nftables_priority=5, nftables_counters=True), []
    )
    script = table_script(settings, 4)
    assert "table ip mine {" in script and "priority filter + 5;" in script
    assert "ip daddr @vips counter drop;" in script


def test_ipv6_table_lets_neighbour_discovery_through_and_keys_link_local_by_ifindex():
    settings = Settings(GlobalDefs(), [])
    script = table_script(settings, 6)
    assert "elements = { nd-neighbor-solicit, nd-neighbor-advert }" in script
    assert "icmpv6 type @neighbor-discovery accept; ip6 daddr fe80::/10 goto in_link_local;" in (
        script
    )
    assert "chain in_link_local { }" in script and "vips_link_local" not in script
    link_local = link_local_script(settings)
    assert "type ipv6_addr . iface_index;" in link_local
    assert "in_link_local ip6 daddr . iif @vips_link_local drop" in link_local


def test_dont_track_primary_keys_link_local_by_name_unless_nftables_ifindex():
    instances = [VrrpInstance(name="A", dont_track_primary=True)]
    by_name = link_local_script(Settings(GlobalDefs(), instances))
    assert "type ipv6_addr . ifname;" in by_name and "ip6 saddr . oifname" in by_name
    forced = link_local_script(Settings(GlobalDefs(nftables_ifindex=True), instances))
    assert "iface_index" in forced


def test_elements_replace_the_sets_contents(monkeypatch):
    monkeypatch.setattr(firewall.socket, "if_nametoindex", lambda name: {"eth0": 2}[name])
    address = ipaddress.ip_address
    script = elements_script(
        Settings(GlobalDefs(), []),
        6,
        {(address("fd00::1"), "eth0"), (address("fe80::5"), "eth0")},
        link_local=True,
    )
    assert script.splitlines() == [
        "flush set ip6 keepalived vips",
        "add element ip6 keepalived vips { fd00::1 }",
        "flush set ip6 keepalived vips_link_local",
        "add element ip6 keepalived vips_link_local { fe80::5 . 2 }",
    ]


class RecordingFirewall(Firewall):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []

    async def _run(self, script: str) -> None:
        self.scripts.append(script)


def test_sets_follow_the_masters_and_the_tables_go_at_stop():
    async def scenario():
        fw = RecordingFirewall()
        await fw.configure(GlobalDefs(), [])
        await fw.block("A", [(vip("10.0.0.1/24"), "eth0")])
        await fw.block("B", [(vip("10.0.0.2/24"), "eth0")])
        await fw.block("B", [(vip("10.0.0.2/24"), "eth0")])  # unchanged: no batch
        await fw.block("A", ())
        await fw.stop()
        return fw.scripts

    first, second, third, last = asyncio.run(scenario())
    assert first.startswith("add table ip keepalived") and "{ 10.0.0.1 }" in first
    assert "add table" not in second and "{ 10.0.0.1, 10.0.0.2 }" in second
    assert third.splitlines() == [
        "flush set ip keepalived vips",
        "add element ip keepalived vips { 10.0.0.2 }",
    ]
    assert last == "delete table ip keepalived\n"


def test_the_link_local_set_comes_with_the_first_link_local_vip(monkeypatch):
    monkeypatch.setattr(firewall.socket, "if_nametoindex", lambda name: 2)

    async def scenario():
        fw = RecordingFirewall()
        await fw.configure(GlobalDefs(), [])
        await fw.block("A", [(vip("fd00::1/64"), "eth0")])
        await fw.block("B", [(vip("fe80::1:1/64"), "eth0")])
        await fw.block("A", ())
        return fw.scripts

    first, second, third = asyncio.run(scenario())
    assert "vips_link_local" not in first
    assert second.startswith("add set ip6 keepalived vips_link_local")
    assert "{ fe80::1:1 . 2 }" in second
    assert "add set" not in third and "{ fe80::1:1 . 2 }" in third


def test_without_a_blocking_instance_nft_never_runs():
    async def scenario():
        fw = RecordingFirewall()
        await fw.configure(GlobalDefs(vrrp_strict=True), [])
        await fw.block("A", ())
        await fw.stop()
        return fw.scripts

    assert asyncio.run(scenario()) == []


def test_a_reload_with_other_settings_makes_the_tables_again_with_their_vips():
    async def scenario():
        fw = RecordingFirewall()
        await fw.configure(GlobalDefs(), [])
        await fw.block("A", [(vip("10.0.0.1/24"), "eth0")])
        await fw.configure(GlobalDefs(), [])  # the same settings: nothing to do
        await fw.configure(GlobalDefs(nftables="other", nftables_counters=True), [])
        return fw.scripts

    first, delete, remade = asyncio.run(scenario())
    assert delete == "delete table ip keepalived\n"
    assert remade.startswith("add table ip other") and "counter drop" in remade
    assert "add element ip other vips { 10.0.0.1 }" in remade
