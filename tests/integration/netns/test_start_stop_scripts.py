"""startup_script / shutdown_script in a namespace: VRRP starts only once the startup script
is over, the shutdown script runs when everything has stopped (keepalived's main.c)."""

from __future__ import annotations

import pytest
from vrrp_support import Agent, config, holds, instance_block

pytestmark = pytest.mark.netns


def test_startup_script_runs_before_vrrp_and_shutdown_script_after(lab, tmp_path):
    node = lab.host("d1", "192.168.77.11/24")
    started, stopped = tmp_path / "started", tmp_path / "stopped"
    scripts = (
        f"  startup_script \"/bin/sh -c 'sleep 1; ip -o addr show dev eth0 > {started}'\"\n"
        f"  shutdown_script \"/bin/sh -c 'ip -o addr show dev eth0 > {stopped}'\"\n"
        "  shutdown_script_timeout 5\n"
    )
    block = instance_block(150).replace("state BACKUP", "state MASTER")
    agent = Agent(node, tmp_path, config(block, global_extra=scripts)).start()
    node.wait_for(lambda: holds(node), timeout=15)
    assert "192.168.77.100" not in started.read_text()  # no VIP while it ran
    assert not stopped.exists()
    assert agent.stop() == 0
    assert "192.168.77.11/24" in stopped.read_text()
    assert "192.168.77.100" not in stopped.read_text()  # after the VIPs went
