"""lvs-agent's frames on the lab wire equal real keepalived's (../shared/reference/vrrp-wire.md).

Same setup as the reference capture (node 192.168.77.11, priority 150, VRID 51, VIP
192.168.77.100/24, advert_int 1); only the source MAC differs, and it is substituted.
"""

from __future__ import annotations

import time

import pytest
from vrrp_support import Agent, config, holds, instance_block

from lvsagent.vrrp import packet

pytestmark = pytest.mark.netns

REFERENCE_MAC = {2: "deff2ed707a8", 3: "b6bbad3f00d5"}
V2_PASS = (
    "01005e000012deff2ed707a8080045c0002800010000ff70ccdec0a84d0be0000012"
    "213396010101cc3ec0a84d647365637265743132"
)
V3_IPV4 = (
    "01005e000012b6bbad3f00d5080045c0002000010000ff70cce6c0a84d0be00000123133960100643c17c0a84d64"
)
V2_PRIORITY0_VRRP = "213300010101623fc0a84d647365637265743132"
V3_PRIORITY0_VRRP = "313300010064d217c0a84d64"
GARP = "ffffffffffffdeff2ed707a808060001080006040001deff2ed707a8c0a84d64ffffffffffffc0a84d64"


def frames(capture) -> list[bytes]:
    """Whole frames from `tcpdump -xx` output: a header line, then indented hex lines."""
    found: list[str] = []
    for line in capture.read("-xx"):
        if not line[0].isspace():
            found.append("")
        elif found:
            found[-1] += "".join(line.split(":", 1)[1].split())
    return [bytes.fromhex(frame) for frame in found]


@pytest.mark.parametrize("version", [2, 3])
def test_frames_equal_keepalived(lab, tmp_path, version):
    node = lab.host("d1", "192.168.77.11/24", ipv6="fd00:77::11/64")
    capture = lab.capture("proto 112 or arp")
    auth = {"auth_pass": "secret12"} if version == 2 else {}
    agent = Agent(node, tmp_path, config(instance_block(150, version=version, **auth))).start()
    node.wait_for(lambda: holds(node), timeout=15)
    time.sleep(1.5)
    assert agent.stop() == 0
    time.sleep(0.5)
    capture.stop()
    ours = node.mac.replace(":", "")

    def as_reference(text: str) -> bytes:
        return bytes.fromhex(text.replace(REFERENCE_MAC[version], ours))

    seen = frames(capture)
    adverts = [f for f in seen if f[12:14] == b"\x08\x00" and f[23] == packet.IPPROTO_VRRP]
    first = as_reference(V2_PASS if version == 2 else V3_IPV4)
    assert adverts[0] == first
    # the IP ID counts up from 1, as keepalived's does
    assert [int.from_bytes(f[18:20], "big") for f in adverts] == list(range(1, len(adverts) + 1))
    resign = V2_PRIORITY0_VRRP if version == 2 else V3_PRIORITY0_VRRP
    assert adverts[-1][34:].hex() == resign
    garps = [f for f in seen if f[12:14] == b"\x08\x06"]
    assert garps and all(f == bytes.fromhex(GARP.replace(REFERENCE_MAC[2], ours)) for f in garps)


@pytest.mark.parametrize(
    ("peer", "vip", "version", "header"),
    [
        ("192.168.77.12", "192.168.77.100/24", 2, "ttl 3,"),
        ("fd00:77::12", "fd00:77::100/64", 3, "hlim 3,"),
    ],
)
def test_unicast_ttl_is_the_ttl_of_unicast_adverts(lab, tmp_path, peer, vip, version, header):
    """keepalived writes unicast_ttl in its IPv4 header and as the IPv6 hop limit."""
    node = lab.host("d1", "192.168.77.11/24", ipv6="fd00:77::11/64")
    lab.host("d2", "192.168.77.12/24", ipv6="fd00:77::12/64")  # answers ARP / ND for the peer
    capture = lab.capture(f"( ip proto 112 or ip6 proto 112 ) and dst host {peer}")
    extra = f"  unicast_ttl 3\n  unicast_peer {{\n    {peer}\n  }}\n"
    block = instance_block(150, vip=vip, version=version, extra=extra)
    agent = Agent(node, tmp_path, config(block.replace("state BACKUP", "state MASTER"))).start()
    node.wait_for(lambda: len(capture.read()) >= 3, timeout=15)
    assert agent.stop() == 0
    capture.stop()
    headers = [line for line in capture.read("-v") if "VRRP (112)" in line]
    assert len(headers) >= 3
    assert all(header in line for line in headers), headers


@pytest.mark.parametrize(("extra", "expected"), [("", 5), ("  garp_lower_prio_repeat 2\n", 2)])
def test_a_master_hearing_a_lower_priority_sends_gratuitous_arps(lab, tmp_path, extra, expected):
    """keepalived's default: vrrp_garp_master_repeat gratuitous ARPs (or garp_lower_prio_repeat)
    when a router of lower priority claims mastership."""
    master = lab.host("d1", "192.168.77.11/24")
    lower = lab.host("d2", "192.168.77.12/24")
    block = instance_block(150, extra=extra).replace("state BACKUP", "state MASTER")
    first = Agent(master, tmp_path, config(block, global_extra="  vrrp_garp_master_delay 0\n"))
    first.start()
    master.wait_for(lambda: holds(master), timeout=15)
    time.sleep(0.5)  # its own start-up burst is over
    capture = lab.capture("arp")
    claim = instance_block(100).replace("state BACKUP", "state MASTER")
    second = Agent(lower, tmp_path, config(claim)).start()
    time.sleep(2.5)
    assert master.wait_for(lambda: holds(master), timeout=5)
    capture.stop()
    ours = [line for line in capture.read("-e") if line.split()[1] == master.mac]
    assert len(ours) == expected, ours
    assert second.stop() == 0 and first.stop() == 0
