"""The pacing of gratuitous ARPs on the wire, lvs-agent beside real keepalived: the same
configuration, the same spacing of the frames a new master sends.

A garp_group's interfaces share one budget (a switch that cannot take a flood of ARPs):
the master's VIP on eth0 and its excluded VIP on eth1 are announced one frame per
garp_interval across both interfaces; without the group, vrrp_garp_interval spaces each
interface alone, so the two interfaces' frames go out side by side. keepalived 2.2.7 orders
the group's frames by its instances' addresses, lvs-agent first come first served: the
counts and the spacing are compared, not the order.
"""

from __future__ import annotations

import time

import pytest
from vrrp_support import Agent, Keepalived, config, holds, instance_block

pytestmark = pytest.mark.netns

EXCLUDED = "10.9.0.100"
GROUP = "garp_group {\n  garp_interval 0.2\n  interfaces {\n    eth0\n    eth1\n  }\n}\n"
PER_INTERFACE = "  vrrp_garp_interval 0.2\n"


def master_config(pacing_block: str, global_extra: str) -> str:
    excluded = f"  virtual_ipaddress_excluded {{\n    {EXCLUDED}/24 dev eth1\n  }}\n"
    block = instance_block(150, extra=excluded).replace("state BACKUP", "state MASTER")
    text = config(block, global_extra="  vrrp_garp_master_delay 0\n" + global_extra)
    return pacing_block + text


def arp_times(capture, mac: str) -> list[float]:
    """Times of the gratuitous ARPs sent from `mac` (tcpdump -tt -e)."""
    return [float(line.split()[0]) for line in capture.read("-tt", "-e") if line.split()[1] == mac]


@pytest.mark.parametrize("daemon", [Agent, Keepalived], ids=["lvs-agent", "keepalived"])
@pytest.mark.parametrize(
    ("pacing_block", "global_extra", "shared"),
    [(GROUP, "", True), ("", PER_INTERFACE, False)],
    ids=["garp_group", "vrrp_garp_interval"],
)
def test_a_new_master_paces_its_gratuitous_arps(
    lab, tmp_path, daemon, pacing_block, global_extra, shared
):
    """The burst of five rounds: each address's first frame goes out when its budget allows,
    and the later rounds that find it still waiting collapse into one more frame (keepalived's
    "pending" flag): 2 + 1 frames in one shared budget, 2 + 2 in two."""
    master = lab.host("d1", "192.168.77.11/24")
    master.run(["ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"])
    for link in ("eth1", "eth1p"):
        master.run(["ip", "link", "set", link, "up"])
    eth1_mac = master.run(["cat", "/sys/class/net/eth1/address"]).stdout.strip()
    on_eth0 = lab.capture("arp")
    on_eth1 = lab.capture("arp", host=master, dev="eth1p")
    running = daemon(master, tmp_path, master_config(pacing_block, global_extra)).start()
    assert master.wait_for(lambda: holds(master), timeout=15)
    expected = (2, 1) if shared else (2, 2)
    master.wait_for(
        lambda: (
            len(arp_times(on_eth0, master.mac)) + len(arp_times(on_eth1, eth1_mac)) >= sum(expected)
        ),
        timeout=15,
    )
    time.sleep(1)  # nothing more comes
    assert running.stop() == 0
    on_eth0.stop()
    on_eth1.stop()
    eth0 = arp_times(on_eth0, master.mac)
    eth1 = arp_times(on_eth1, eth1_mac)
    assert (len(eth0), len(eth1)) == expected, running.log_text()[-3000:]
    both = sorted(eth0 + eth1)
    gaps = [round(b - a, 3) for a, b in zip(both, both[1:])]
    if shared:  # one frame per interval across the two interfaces
        assert min(gaps) >= 0.19, gaps
    else:  # each interface its own turns: the two go out side by side
        assert all(b - a >= 0.19 for a, b in zip(eth0, eth0[1:])), eth0
        assert all(b - a >= 0.19 for a, b in zip(eth1, eth1[1:])), eth1
        assert abs(eth0[0] - eth1[0]) < 0.1, (eth0, eth1)
