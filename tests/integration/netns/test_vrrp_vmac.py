"""use_vmac against real keepalived (Debian 2.2.7): the RFC 5798 virtual MAC on the wire.

lvs-agent (d1) and keepalived (d2) both with use_vmac on eth0, VRID 51: each master's adverts
leave with source MAC 00:00:5e:00:01:33 (from the base interface's own MAC with
vmac_xmit_base), a client's ARP request for the VIP is answered with the virtual MAC whoever is
master, failover works both ways, and the macvlan and the sysctls the agent set are gone when
it stops.
"""

from __future__ import annotations

import json
import time

import pytest
from vrrp_support import VIP4, VIP6, Agent, Keepalived, config, holders, instance_block, stays

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VRID = 51
VIRTUAL_MAC = "00:00:5e:00:01:33"
VMAC = "vrrp.51"


@pytest.fixture
def hosts(lab):
    d1 = lab.host("d1", "192.168.77.11/24")
    d2 = lab.host("d2", "192.168.77.12/24")
    client = lab.host("c", "192.168.77.50/24")
    return d1, d2, client


def block(priority: int, extra: str) -> str:
    return instance_block(priority, vrid=VRID, vip=f"{VIP4}/32", extra=extra)


def advert_macs(capture, source_ip: str) -> set[str]:
    """Source MACs of the VRRP adverts sent from `source_ip`."""
    return {
        line.split()[1]
        for line in capture.read("-e")
        if f"{source_ip} > 224.0.0.18" in line and "VRRP" in line
    }


def vip_arp_replies(lab, client) -> set[str]:
    """The client pings the VIP after forgetting its MAC: the MACs its ARP request got back.
    (The neighbour table is no witness: the master's own ARP request for the client, sent from
    the base interface with the VIP as source, would overwrite the entry.)"""
    capture = lab.capture("arp")
    client.run(["ip", "neigh", "flush", "dev", "eth0"])
    client.run(["ping", "-c", "1", "-W", "2", VIP4])
    replies = client.wait_for(
        lambda: [line for line in capture.read() if f"Reply {VIP4} is-at " in line], 5
    )
    capture.stop()
    return {line.split(" is-at ")[1].split(",")[0] for line in replies}


def link_exists(host, name: str) -> bool:
    return host.run(["ip", "link", "show", name], check=False).returncode == 0


def conf(host, ifname: str, *keys: str) -> list[str]:
    """net.ipv4.conf.IFNAME.KEY of each key (a '.' in IFNAME written '/')."""
    return [
        host.run(["sysctl", "-n", f"net.ipv4.conf.{ifname}.{key}"]).stdout.strip() for key in keys
    ]


def wait_master(all_hosts, master, timeout: float = 15) -> None:
    master.wait_for(lambda: holders(all_hosts, VIP4) == [master], timeout)


@pytest.mark.parametrize("xmit_base", [False, True], ids=["vmac", "vmac_xmit_base"])
def test_pair_with_keepalived_on_the_virtual_mac(hosts, lab, tmp_path, xmit_base):
    """keepalived master first: the agent, backup, must hear it through its VMAC socket (with
    rp_filter strict on the host, which the agent lifts as keepalived does), then takes over
    when keepalived stops and gives the VIP back when it returns."""
    d1, d2, client = hosts
    extra = "  use_vmac\n" + ("  vmac_xmit_base\n" if xmit_base else "")
    pair = [d1, d2]
    d1.run(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.eth0.rp_filter=0"])
    adverts = lab.capture("ip proto 112")
    garps = lab.capture(f"arp and src host {VIP4}")
    agent = Agent(d1, tmp_path, config(block(100, extra)))
    peer = Keepalived(d2, tmp_path, config(block(200, extra))).start()
    wait_master(pair, d2)
    agent.start()
    d1.wait_for(lambda: link_exists(d1, VMAC), 10)
    assert stays(lambda: holders(pair, VIP4) == [d2], 4)  # the agent hears keepalived
    assert conf(d1, "all", "rp_filter") == ["0"]
    assert conf(d1, "eth0", "rp_filter", "arp_ignore", "arp_filter") == ["1", "1", "1"]
    assert conf(d1, "vrrp/51", "arp_ignore", "accept_local", "rp_filter") == ["1", "1", "0"]
    link = json.loads(d1.run(["ip", "-j", "-d", "link", "show", VMAC]).stdout)[0]
    assert link["address"] == VIRTUAL_MAC
    assert (link["linkinfo"]["info_kind"], link["linkinfo"]["info_data"]["mode"]) == (
        "macvlan",
        "private",
    )
    assert vip_arp_replies(lab, client) == {VIRTUAL_MAC}  # keepalived answers on its VMAC

    assert peer.stop() == 0  # priority 0: the agent takes over
    wait_master(pair, d1, timeout=5)
    assert d1.addresses(VMAC) == [f"{VIP4}/32"]  # the VIP is on the macvlan
    assert vip_arp_replies(lab, client) == {VIRTUAL_MAC}  # the agent answers with the same MAC
    time.sleep(1.5)  # an advert or two more in the capture

    peer.start()  # keepalived preempts; the agent hears it and steps back
    wait_master(pair, d2)
    assert stays(lambda: holders(pair, VIP4) == [d2], 3)
    expected = {d1.ip: d1.mac, d2.ip: d2.mac} if xmit_base else dict.fromkeys(
        (d1.ip, d2.ip), VIRTUAL_MAC
    )  # fmt: skip
    for source_ip, mac in expected.items():
        assert advert_macs(adverts, source_ip) == {mac}, source_ip
    assert "Success creating VMAC interface vrrp.51" in agent.log_text()
    # gratuitous ARPs (keepalived's and the agent's) on the virtual MAC, never eth0's
    gratuitous = [line for line in garps.read("-e") if f"who-has {VIP4} " in line]
    announced = {line.split()[1] for line in gratuitous if f"tell {VIP4}" in line}
    assert announced == {VIRTUAL_MAC}

    assert agent.stop() == 0
    assert not link_exists(d1, VMAC)  # the agent removed its macvlan and put back the sysctls
    assert conf(d1, "all", "rp_filter") == ["1"]
    assert conf(d1, "eth0", "rp_filter", "arp_ignore", "arp_filter") == ["0", "0", "0"]


def test_the_vmac_follows_its_interface_deleted_and_created_again(hosts, lab, tmp_path):
    """The kernel deletes a macvlan with its base interface: when eth0 comes back (a new
    index, as a rebuilt VLAN or bond), the agent makes the VMAC again and is master on it."""
    d1, d2, client = hosts
    pair = [d1, d2]
    agent = Agent(d1, tmp_path, config(block(150, "  use_vmac\n"))).start()
    Keepalived(d2, tmp_path, config(block(100, "  use_vmac\n"))).start()
    wait_master(pair, d1)
    old_index = d1.ifindex(VMAC)

    d1.unplug()
    wait_master(pair, d2, timeout=10)
    assert not link_exists(d1, VMAC)
    d1.plug()
    wait_master(pair, d1)
    assert d1.ifindex(VMAC) != old_index
    assert d1.addresses(VMAC) == [f"{VIP4}/32"]
    assert conf(d1, "eth0", "arp_ignore", "arp_filter") == ["1", "1"]  # set on the new eth0
    adverts = lab.capture("ip proto 112")
    time.sleep(2.5)
    assert advert_macs(adverts, d1.ip) == {VIRTUAL_MAC}
    assert vip_arp_replies(lab, client) == {VIRTUAL_MAC}
    assert agent.stop() == 0
    assert not link_exists(d1, VMAC)


def test_ipv6_pair_on_the_ipv6_virtual_mac(lab, tmp_path):
    """IPv6: the MAC is 00:00:5e:00:02:VRID, the adverts leave the VMAC from the base
    interface's link-local address (keepalived copies it there), the VIP's neighbour
    advertisement carries the virtual MAC."""
    d1 = lab.host("d1", "192.168.77.11/24", ipv6="fd00:77::11/64")
    d2 = lab.host("d2", "192.168.77.12/24", ipv6="fd00:77::12/64")
    client = lab.host("c", "192.168.77.50/24", ipv6="fd00:77::50/64")
    pair, mac6 = [d1, d2], "00:00:5e:00:02:33"
    extra = "  use_vmac\n"
    six = {"vrid": VRID, "vip": f"{VIP6}/64", "version": 3, "extra": extra}
    adverts = lab.capture("ip6 and ip6[6] == 112")
    agent = Agent(d1, tmp_path, config(instance_block(150, **six))).start()
    Keepalived(d2, tmp_path, config(instance_block(100, **six))).start()
    d1.wait_for(lambda: holders(pair, VIP6) == [d1], 15)
    link = json.loads(d1.run(["ip", "-j", "link", "show", VMAC]).stdout)[0]
    assert link["address"] == mac6
    link_local = next(a for a in d1.addresses("eth0") if a.startswith("fe80:"))  # copied:
    assert sorted(d1.addresses(VMAC)) == sorted([f"{VIP6}/64", link_local])
    assert neighbour_macs(lab, client) == {mac6}

    assert agent.stop() == 0
    d2.wait_for(lambda: holders(pair, VIP6) == [d2], 5)
    assert not link_exists(d1, VMAC)
    assert neighbour_macs(lab, client) == {mac6}
    agent.start()
    d1.wait_for(lambda: holders(pair, VIP6) == [d1], 15)
    time.sleep(1.5)
    for host in pair:  # each one's adverts, from its eth0's link-local, on the virtual MAC
        source = next(a for a in host.addresses("eth0") if a.startswith("fe80:")).split("/")[0]
        macs = {line.split()[1] for line in adverts.read("-e") if f"{source} > ff02::12" in line}
        assert macs == {mac6}, host
    assert agent.stop() == 0


def neighbour_macs(lab, client) -> set[str]:
    """The client pings the VIP after forgetting it: the source MACs of the neighbour
    advertisements for it that come back."""
    capture = lab.capture("icmp6")
    client.run(["ip", "-6", "neigh", "flush", "dev", "eth0"])
    client.run(["ping", "-6", "-c", "1", "-W", "2", VIP6])
    adverts = client.wait_for(
        lambda: [
            line
            for line in capture.read("-e")
            if "neighbor advertisement" in line and f"tgt is {VIP6}" in line
        ],
        5,
    )
    capture.stop()
    return {line.split()[1] for line in adverts}
