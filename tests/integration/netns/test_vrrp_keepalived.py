"""lvs-agent with real keepalived (Debian 2.2.7) as its peer, in both roles.

For VRRPv2 with PASS authentication, VRRPv3 over IPv4 and VRRPv3 over IPv6: one master at a
time, takeover both ways (SIGTERM of the master, preemption when it comes back), and packets
that keepalived itself would ignore (wrong password, wrong version) ignored by the agent too;
an IPv6 /128 VIP added as keepalived adds it (deprecated, never a source address).
"""

from __future__ import annotations

import pytest
from vrrp_support import VIP4, VIP6, Agent, Keepalived, config, holders, instance_block, stays

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VARIANTS = {
    "v2-pass": {"version": 2, "auth_pass": "secret12", "vip": f"{VIP4}/24"},
    "v3-ipv4": {"version": 3, "vip": f"{VIP4}/24"},
    "v3-ipv6": {"version": 3, "vip": f"{VIP6}/64", "vrid": 52},
}


@pytest.fixture
def pair(lab):
    d1 = lab.host("d1", "192.168.77.11/24", ipv6="fd00:77::11/64")
    d2 = lab.host("d2", "192.168.77.12/24", ipv6="fd00:77::12/64")
    return d1, d2


def vip_of(variant: dict) -> str:
    return variant["vip"].split("/")[0]


def wait_alone(pair, host, vip, timeout=15):
    host.wait_for(lambda: holders(pair, vip) == [host], timeout)


@pytest.mark.parametrize("agent_priority", [150, 100], ids=["agent-master", "agent-backup"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_one_master_and_takeover_both_ways(pair, tmp_path, name, agent_priority):
    variant, d1, d2 = VARIANTS[name], *pair
    vip = vip_of(variant)
    keepalived_priority = 250 - agent_priority
    agent = Agent(d1, tmp_path, config(instance_block(agent_priority, **variant)))
    peer = Keepalived(d2, tmp_path, config(instance_block(keepalived_priority, **variant)))
    high, low = (d1, d2) if agent_priority > keepalived_priority else (d2, d1)
    high_node = agent if high is d1 else peer

    agent.start()
    peer.start()
    wait_alone(pair, high, vip)
    assert stays(lambda: holders(pair, vip) == [high], 3)  # keepalived and agent agree

    assert high_node.stop() == 0  # priority 0: the other one takes over
    wait_alone(pair, low, vip, timeout=5)

    high_node.start()  # preemption back
    wait_alone(pair, high, vip)
    assert stays(lambda: holders(pair, vip) == [high], 3)
    assert "invalid" not in agent.log_text().lower()


def test_wrong_password_is_ignored_on_both_sides(pair, tmp_path):
    d1, d2 = pair
    agent = Agent(d1, tmp_path, config(instance_block(150, auth_pass="secret12"))).start()
    peer = Keepalived(d2, tmp_path, config(instance_block(100, auth_pass="other123"))).start()
    d1.wait_for(lambda: holders(pair) == [d1, d2], 15)  # each ignores the other: two masters
    d1.wait_for(lambda: "(VI_1) received an invalid passwd!" in agent.log_text(), 5)
    assert "secret12" not in agent.log_text() and "other123" not in agent.log_text()
    status = agent.command("status")
    assert status.returncode == 0
    assert peer.proc.poll() is None


def test_wrong_version_is_ignored_on_both_sides(pair, tmp_path):
    d1, d2 = pair
    agent = Agent(d1, tmp_path, config(instance_block(100, version=3))).start()
    Keepalived(d2, tmp_path, config(instance_block(150, version=2))).start()
    d1.wait_for(lambda: holders(pair) == [d1, d2], 15)
    assert "(VI_1) wrong version. Received 2 and expect 3" in agent.log_text()


def test_ipv6_host_vip_is_deprecated_as_keepalived_makes_it(pair, tmp_path):
    """A /128 VIP gets preferred_lft 0 from both: the master's own connections (health checks
    of a DR real server, which holds the VIP too) keep leaving from its own address, even
    though the VIP shares more leading bits with the destination."""
    d1, d2 = pair
    variant = {"version": 3, "vip": f"{VIP6}/128", "vrid": 52}
    agent = Agent(d1, tmp_path, config(instance_block(150, **variant))).start()
    peer = Keepalived(d2, tmp_path, config(instance_block(100, **variant))).start()
    own, other = "fd00:77::11", "fd00:77::12"
    for host, node in ((d1, agent), (d2, peer)):
        wait_alone(pair, host, VIP6)
        shown = host.run(["ip", "-6", "-o", "address", "show", "to", f"{VIP6}/128"]).stdout
        assert "deprecated" in shown and "preferred_lft 0sec" in shown, shown
        route = host.run(["ip", "-6", "route", "get", other]).stdout
        assert f"src {own} " in route, route
        own, other = other, own
        assert node.stop() == 0  # priority 0: the other one takes over
