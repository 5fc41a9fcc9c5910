"""lvs.ha.vrrp_instance with ansible-playbook in a lab host: the integration target alone (files
under a temporary root), then against a real lvs-agent running in the same namespace."""

from __future__ import annotations

from pathlib import Path

import pytest
from vrrp_support import Agent, config, holds

from testbed.ansible import local_argv, run_adhoc, run_target

pytestmark = pytest.mark.netns

VIP = "192.168.79.100"


def dump(root: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_target_writes_validates_and_removes(lab, tmp_path):
    host = lab.host("r1", "192.168.79.11/24")
    root = tmp_path / "root"
    result = run_target("vrrp_instance", tmp_path, host, {"vrrp_instance_root": root})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0" in result.stdout and "ignored=1" in result.stdout
    assert sorted(path.name for path in (root / "conf.d").iterdir()) == []


def adhoc(host, module_args: str, check: bool = False) -> tuple[str, dict]:
    """One `ansible -m lvs.ha.vrrp_instance` run in the host; returns (status, result)."""
    argv = [*local_argv("ansible"), "localhost", "-m", "lvs.ha.vrrp_instance", "-a", module_args]
    if check:
        argv.append("--check")
    return run_adhoc(host, argv)


def test_against_a_running_agent(lab, tmp_path):
    host = lab.host("r1", "192.168.79.11/24")
    root = tmp_path / "root"
    (root / "conf.d").mkdir(parents=True)
    agent = Agent(host, tmp_path, config(f"include {root}/conf.d/*.conf\n")).start()
    try:
        host.wait_for(agent.socket.exists, timeout=15)

        # the whole target, with the agent reloaded at each change
        result = run_target(
            "vrrp_instance",
            tmp_path,
            host,
            {
                "vrrp_instance_root": root,
                "vrrp_instance_main_config": agent.conf,
                "vrrp_instance_socket": agent.socket,
                "vrrp_instance_interface": "eth0",
                "vrrp_instance_vip": f"{VIP}/24",
                "vrrp_instance_agent": "true",
            },
        )
        assert result.returncode == 0, result.stdout + result.stderr + agent.log_text()
        assert agent.log_text().count("Reloading configuration") >= 2  # present, absent
        assert not holds(host, VIP), "absent must have stopped the instance"

        # declared once more: the agent becomes MASTER (alone on the LAN) and says so
        args = (
            f"name=VI_LIVE interface=eth0 virtual_router_id=62 priority=120 advert_int=1 "
            f"virtual_ipaddresses={VIP}/24 config_dir={root}/conf.d main_config={agent.conf} "
            f"control_socket={agent.socket}"
        )
        status, first = adhoc(host, args)
        assert status == "CHANGED", first
        assert first["reloaded"] is True
        assert first["live"]["name"] == "VI_LIVE"
        assert first["live"]["priority"] == 120
        host.wait_for(lambda: holds(host, VIP), timeout=15)
        status, again = adhoc(host, args)
        assert status == "SUCCESS", again
        assert again["reloaded"] is False
        assert (again["live"]["state"], again["live"]["effective_priority"]) == ("MASTER", 120)

        # check mode reads the live state but neither writes nor reloads
        before, reloads = dump(root), agent.log_text().count("Reloading configuration")
        status, checked = adhoc(host, args.replace("priority=120", "priority=90"), check=True)
        assert status == "CHANGED", checked
        assert checked["reloaded"] is False and checked["live"]["state"] == "MASTER"
        assert dump(root) == before
        assert agent.log_text().count("Reloading configuration") == reloads

        # removed: the agent lets the VIP go
        status, removed = adhoc(host, f"{args} state=absent")
        assert status == "CHANGED", removed
        assert removed["reloaded"] is True and removed["live"] is None
        host.wait_for(lambda: not holds(host, VIP), timeout=15)
    finally:
        agent.stop()
