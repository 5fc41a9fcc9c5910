"""A killed lvs-agent's VIPs that the new configuration no longer names are removed at start.

keepalived cannot do this (it records nothing); the agent records the VIPs its configuration
names in its state folder and, at start, removes the recorded ones it no longer declares.
An address nobody recorded (here one added by hand) is never touched.
"""

from __future__ import annotations

import json

import pytest
from vrrp_support import VIP4, Agent, config, holds, instance_block

pytestmark = pytest.mark.netns

DROPPED = "192.168.77.101"
ADDED = "192.168.77.102"
BY_HAND = "192.168.77.150/24"


def recorded(agent: Agent) -> list:
    return [
        vip["address"] for vip in json.loads((agent.base / "vrrp-vips.json").read_text())["vips"]
    ]


def master_again(agent: Agent) -> bool:
    """The second run's VI_1 is master."""
    runs = agent.log_text().split("Starting lvs-agent")
    return len(runs) == 3 and "(VI_1) Entering MASTER STATE" in runs[2]


def test_a_killed_agents_dropped_vip_is_removed_and_nothing_else(lab, tmp_path):
    d1 = lab.host("d1", "192.168.77.11/24")
    d1.add_address(BY_HAND)
    vi_1 = instance_block(150)
    vi_2 = instance_block(150, name="VI_2", vrid=52, vip=f"{DROPPED}/24")
    agent = Agent(d1, tmp_path, config(vi_1, vi_2)).start()
    d1.wait_for(lambda: holds(d1) and holds(d1, DROPPED), timeout=15)
    assert recorded(agent) == [f"{VIP4}/24", f"{DROPPED}/24"]
    agent.kill()
    assert holds(d1, DROPPED)  # killed: nothing was cleaned up

    agent.conf.write_text(config(vi_1))
    agent.start()
    d1.wait_for(lambda: master_again(agent), timeout=15)
    assert f"Removing VIP {DROPPED}/24 from eth0 left by a previous run" in agent.log_text()
    assert holds(d1) and not holds(d1, DROPPED)
    assert BY_HAND in d1.addresses() and "192.168.77.11/24" in d1.addresses()
    assert recorded(agent) == [f"{VIP4}/24"]

    vi_3 = instance_block(150, name="VI_3", vrid=53, vip=f"{ADDED}/24")
    agent.conf.write_text(config(vi_1, vi_3))
    assert agent.command("reload").returncode == 0
    assert recorded(agent) == [f"{VIP4}/24", f"{ADDED}/24"]

    assert agent.stop() == 0, agent.log_text()[-4000:]
    assert recorded(agent) == []
    assert BY_HAND in d1.addresses()
