"""Two decisions of the migration, run by ansible-playbook on this machine (local connection):
- keeping the agent a director already has (roles/lvs_director tasks/agent_current.yml, run by
  migrate_prepare.yml before install.yml): only the payload this controller ships, byte for
  byte, with the lvs-agent command in place, is kept; a fresh keepalived host, a different
  payload or a missing command gets the agent installed (a small wheel stands for pyroute2's);
- a director's VRRP role (tasks/vrrp_role.yml), which orders the hand-over: MASTER where a VIP
  of keepalived's configuration is on an interface (here 127.0.0.1 on lo), else BACKUP."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from testbed.ansible import REPO, ansible_env, local_argv

PLAY = """
- name: Decide
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Learn whether the agent here is current
      ansible.builtin.include_role:
        name: lvs.ha.lvs_director
        tasks_from: agent_current

    - name: Write the decision
      ansible.builtin.copy:
        content: "{{ lvs_director_agent_current | bool }}"
        dest: "{{ decision }}"
        mode: "0600"
"""


@pytest.fixture()
def site(tmp_path: Path) -> dict[str, Path]:
    wheel = tmp_path / "tiny-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tiny/__init__.py", "VALUE = 1\n")
    return {
        "wheel": wheel,
        "cache": tmp_path / "cache",
        "prefix": tmp_path / "opt",
        "command": tmp_path / "lvs-agent",
        "tmp": tmp_path,
    }


def run_play(tmp_path: Path, text: str, variables: dict) -> str:
    """Runs the play TEXT on localhost with VARIABLES; returns what it wrote to `decision`."""
    play = tmp_path / "play.yml"
    play.write_text(text)
    decision = tmp_path / "decision"
    argv = local_argv("ansible-playbook")
    for name, value in {**variables, "decision": decision}.items():
        argv += ["-e", f"{name}={value}"]
    done = subprocess.run(
        [*argv, str(play)],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return decision.read_text()


def decide(site: dict[str, Path]) -> bool:
    decision = run_play(
        site["tmp"],
        PLAY,
        {
            "lvs_director_pyroute2_wheel": site["wheel"],
            "lvs_director_controller_cache": site["cache"],
            "lvs_director_prefix": site["prefix"],
            "lvs_director_command": site["command"],
        },
    )
    return {"True": True, "False": False}[decision]


def install(site: dict[str, Path]) -> None:
    """What install.yml leaves that the decision reads: the shipped payload and the command."""
    site["prefix"].mkdir(exist_ok=True)
    shutil.copy(site["cache"] / "payload" / "lvs-agent.tar", site["prefix"] / "payload.tar")
    site["command"].write_text("#!/bin/sh\n")
    site["command"].chmod(0o755)


def test_a_fresh_keepalived_host_gets_the_agent_installed(site):
    assert decide(site) is False


def test_the_agent_converge_installed_from_this_checkout_is_kept(site):
    decide(site)  # builds the payload on the controller
    install(site)
    assert decide(site) is True


def test_another_payload_is_replaced(site):
    decide(site)
    install(site)
    with open(site["prefix"] / "payload.tar", "ab") as payload:
        payload.write(b"\0")
    assert decide(site) is False


def test_a_payload_without_the_command_is_installed_again(site):
    decide(site)
    install(site)
    site["command"].unlink()
    assert decide(site) is False


ROLE_PLAY = """
- name: Learn the role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Learn this director's VRRP role
      ansible.builtin.include_role:
        name: lvs.ha.lvs_director
        tasks_from: vrrp_role

    - name: Write it
      ansible.builtin.copy:
        content: "{{ lvs_director_vrrp_role }}"
        dest: "{{ decision }}"
        mode: "0600"
"""

KEEPALIVED_CONF = """
vrrp_instance VI_1 {
    state BACKUP
    interface lo
    virtual_router_id 51
    priority 50
    virtual_ipaddress {
        %s
    }
}
"""


@pytest.mark.parametrize(("vip", "role"), [("127.0.0.1", "MASTER"), ("192.0.2.199", "BACKUP")])
def test_the_director_holding_a_vip_is_the_master(tmp_path, vip, role):
    config = tmp_path / "keepalived.conf"
    config.write_text(KEEPALIVED_CONF % vip)
    command = tmp_path / "lvs-agent"
    module_utils = REPO / "plugins" / "module_utils"
    command.write_text(
        f'#!/bin/sh\nPYTHONPATH={module_utils} exec {sys.executable} -m lvsagent "$@"\n'
    )
    command.chmod(0o755)
    variables = {"lvs_director_keepalived_config": config, "lvs_director_command": command}
    assert run_play(tmp_path, ROLE_PLAY, variables) == role
