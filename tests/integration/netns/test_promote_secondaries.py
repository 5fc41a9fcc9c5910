"""promote_secondaries in a namespace: lvs-agent sets the interface's flag as keepalived does, so
that the VIP (a secondary address in the node's subnet) stays when the primary address goes,
and puts 0 back when it stops."""

from __future__ import annotations

import pytest
from vrrp_support import VIP4, Agent, config, holds, instance_block

pytestmark = pytest.mark.netns

FLAG = "/proc/sys/net/ipv4/conf/eth0/promote_secondaries"


def test_promote_secondaries_keeps_the_vip_and_is_put_back(lab, tmp_path):
    node = lab.host("d1", "192.168.77.11/24")
    assert node.run(["cat", FLAG]).stdout.strip() == "0"
    block = instance_block(150, extra="  promote_secondaries\n")
    agent = Agent(node, tmp_path, config(block.replace("state BACKUP", "state MASTER"))).start()
    node.wait_for(lambda: holds(node), timeout=15)
    assert node.run(["cat", FLAG]).stdout.strip() == "1"
    node.run(["ip", "addr", "del", "192.168.77.11/24", "dev", "eth0"])
    assert any(address.startswith(f"{VIP4}/") for address in node.addresses())
    assert agent.stop() == 0
    assert node.run(["cat", FLAG]).stdout.strip() == "0"
